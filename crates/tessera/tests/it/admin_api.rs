//! The admin HTTP API (issue 12, item 1) through the real server: tokens and scopes, RFC 9457
//! problems, cursor pages, `Idempotency-Key` (also under 20 concurrent copies), changes that
//! take effect at once, every call audited, revocation, and its own listener.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{Value, json};
use tessera_core::model::AdminScope;
use tessera_core::operations::{self as ops, Operator};
use tessera_core::unix_now;

use crate::support::{Resp, TestServer};

async fn admin_token(t: &TestServer, scopes: &[AdminScope]) -> (String, String) {
    let made = ops::create_admin_token(
        t.store.as_ref(),
        &Operator("test".into()),
        "back office",
        scopes,
        unix_now(),
    )
    .await
    .unwrap();
    (made.id, made.admin_token)
}

/// One admin API call.
async fn call(
    t: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Resp {
    call_at(&t.base, &t.http, method, path, token, body, idempotency_key).await
}

async fn call_at(
    base: &str,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Resp {
    let mut r = http.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    if let Some(k) = idempotency_key {
        r = r.header("Idempotency-Key", k);
    }
    crate::support::resp(r.send().await.unwrap()).await
}

#[track_caller]
fn problem(r: &Resp, status: u16, slug: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{}",
        r.body
    );
    assert_eq!(
        r.body["type"],
        format!("urn:tessera:problem:{slug}"),
        "{}",
        r.body
    );
    assert_eq!(r.body["status"], status);
    assert!(r.body["title"].is_string() && r.body["detail"].is_string());
}

use reqwest::Method as M;

#[tokio::test]
async fn the_back_office_onboards_a_partner_and_its_client() {
    let t = TestServer::start().await;
    let (_, read) = admin_token(&t, &[AdminScope::Read]).await;
    let (writer_id, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;

    // Without a token, with a forged one, and with a read-only one for a write.
    let r = call(&t, M::GET, "/admin/v1/partners", None, None, None).await;
    problem(&r, 401, "unauthenticated");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let forged = format!("tat_{}", "A".repeat(43));
    let r = call(&t, M::GET, "/admin/v1/partners", Some(&forged), None, None).await;
    problem(&r, 401, "unauthenticated");
    let body = json!({"name": "Acme", "email": "ops@acme.example",
                      "password": "a-long-partner-secret", "scopes": "crm transport"});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&read),
        Some(body.clone()),
        None,
    )
    .await;
    problem(&r, 403, "insufficient-scope");

    // Create, then the errors a back office can act on.
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(body.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let partner_id = r.body["partner_id"].as_str().unwrap().to_string();
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(body),
        None,
    )
    .await;
    problem(&r, 409, "conflict");
    let bad = json!({"name": "X", "email": "not-an-email", "password": "a-long-partner-secret",
                     "scopes": "crm"});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(bad),
        None,
    )
    .await;
    problem(&r, 422, "validation");
    let unknown_field = json!({"name": "X", "email": "x@y.example", "password": "p", "scopes": "crm", "admin": true});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(unknown_field),
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    let r = call(
        &t,
        M::GET,
        "/admin/v1/partners/nope",
        Some(&read),
        None,
        None,
    )
    .await;
    problem(&r, 404, "not-found");
    let r = call(
        &t,
        M::GET,
        "/admin/v1/nothing-here",
        Some(&read),
        None,
        None,
    )
    .await;
    problem(&r, 404, "not-found");

    // A client: its secret works at the token endpoint at once, on this node.
    let client = new_client(&partner_id, "Escrow App");
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(client),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.headers["cache-control"], "no-store",
        "a secret is not cached"
    );
    let (client_id, secret) = (
        r.body["client_id"].as_str().unwrap().to_string(),
        r.body["client_secret"].as_str().unwrap().to_string(),
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client_id}:{secret}")
        )
    );
    let token = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    let r = call(
        &t,
        M::GET,
        &format!("/admin/v1/clients/{client_id}"),
        Some(&read),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("Escrow App"))
    );
    assert!(
        !r.body.to_string().contains(&secret),
        "no view shows a secret"
    );

    // Disabling the client refuses its secret at once.
    let r = call(
        &t,
        M::PUT,
        &format!("/admin/v1/clients/{client_id}/status"),
        Some(&write),
        Some(json!({"status": "disabled"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(token.status, 401, "{}", token.body);

    // Cursor pages.
    for i in 0..3 {
        let p = json!({"name": format!("P{i}"), "email": format!("p{i}@page.example"),
                       "password": "a-long-partner-secret", "scopes": "crm"});
        let r = call(
            &t,
            M::POST,
            "/admin/v1/partners",
            Some(&write),
            Some(p),
            None,
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/admin/v1/partners?limit=2".to_string();
    loop {
        let page = call(&t, M::GET, &path, Some(&read), None, None).await;
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|p| p["partner_id"].as_str().unwrap().to_string()),
        );
        match page.body["next"].as_str() {
            Some(next) => path = format!("/admin/v1/partners?limit=2&after={next}"),
            None => break,
        }
    }
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len(), distinct.len()),
        (4, 4),
        "every partner once: {seen:?}"
    );
    let r = call(
        &t,
        M::GET,
        "/admin/v1/partners?limit=0",
        Some(&read),
        None,
        None,
    )
    .await;
    problem(&r, 422, "validation");

    // Keys: a rotation through the API is published at once.
    let r = call(
        &t,
        M::POST,
        "/admin/v1/keys/rotate",
        Some(&write),
        Some(json!({"alg": "EdDSA"})),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kid = r.body["kid"].as_str().unwrap().to_string();
    let jwks = t.get("/.well-known/jwks.json", None).await;
    assert!(jwks.body.to_string().contains(&kid));

    // Every call is audited: changes name the token, reads too.
    t.engine().flush_audit().await;
    let r = call(
        &t,
        M::GET,
        "/admin/v1/audit?event=admin.change&limit=100",
        Some(&read),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // As `tessera audit` prints them: with `time`, `at` in RFC 3339 UTC.
    for e in r.body["items"].as_array().unwrap() {
        let at = e["at"].as_i64().unwrap();
        assert_eq!(
            e["time"].as_str().unwrap(),
            tessera_core::calendar::format_instant(at)
        );
    }
    let by = format!("api:{writer_id}");
    let changes: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["by"] == by.as_str())
        .collect();
    assert!(
        changes
            .iter()
            .any(|e| e["detail"]["change"] == "client.create")
    );
    assert!(
        changes
            .iter()
            .any(|e| e["detail"]["change"] == "keys.rotate")
    );
    assert!(
        !r.body.to_string().contains(&secret),
        "no secret in the audit trail"
    );
    let r = call(
        &t,
        M::GET,
        "/admin/v1/audit?event=admin.read",
        Some(&read),
        None,
        None,
    )
    .await;
    assert!(!r.body["items"].as_array().unwrap().is_empty());

    // A revoked admin token is refused at its next call.
    ops::revoke_admin_token(
        t.store.as_ref(),
        &Operator("test".into()),
        &writer_id,
        unix_now(),
    )
    .await
    .unwrap();
    let r = call(&t, M::GET, "/admin/v1/partners", Some(&write), None, None).await;
    problem(&r, 401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_creates_once_even_under_20_copies() {
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let p = call(&t, M::POST, "/admin/v1/partners", Some(&write),
        Some(json!({"name": "Acme", "email": "ops@acme.example", "password": "a-long-partner-secret", "scopes": "crm"})),
        None).await;
    let partner_id = p.body["partner_id"].as_str().unwrap().to_string();
    let client = new_client(&partner_id, "Escrow App");

    let first = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(client.clone()),
        Some("k-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(client.clone()),
        Some("k-1"),
    )
    .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the same answer, secret included");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other = new_client(&partner_id, "Other");
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(other),
        Some("k-1"),
    )
    .await;
    problem(&r, 409, "idempotency-conflict");
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(client.clone()),
        Some("has space"),
    )
    .await;
    problem(&r, 400, "bad-request");
    // The stored fingerprint is keyed: a stolen database cannot test password guesses with it.
    let token_id = ops::authenticate_admin(t.store.as_ref(), &write)
        .await
        .unwrap()
        .unwrap()
        .id;
    let held = t
        .store
        .reserve_idempotency_key(
            &token_id,
            "k-1",
            None,
            &tessera_core::secret::SecretDigest([0; 32]),
            unix_now(),
            0,
        )
        .await
        .unwrap()
        .unwrap();
    let body = serde_json::to_vec(&client).unwrap();
    // The path as the nested admin router sees it.
    let parts: [&[u8]; 3] = [b"POST", b"/clients", &body];
    let label = b"tessera idempotency fingerprint v1";
    let ours = tessera_core::secret::SecretDigest::keyed_parts(&t.master().derive(label), &parts);
    let other = tessera_core::master::MasterKey::generate();
    let theirs = tessera_core::secret::SecretDigest::keyed_parts(&other.derive(label), &parts);
    assert!(
        held.fingerprint == ours,
        "an HMAC under the deployment's master key"
    );
    assert!(held.fingerprint != theirs);

    // 20 copies at once with a fresh key: one client is made; every answer is it or "in flight".
    let t = Arc::new(t);
    let answers = join_all((0..20).map(|_| {
        let (t, write, client) = (Arc::clone(&t), write.clone(), client.clone());
        async move {
            call(
                &t,
                M::POST,
                "/admin/v1/clients",
                Some(&write),
                Some(client),
                Some("k-burst"),
            )
            .await
        }
    }))
    .await;
    let made: std::collections::HashSet<String> = answers
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.body["client_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(made.len(), 1, "one client for 20 copies");
    assert!(answers.iter().all(|r| r.status == 201 || r.status == 409));
    let listed = call(
        &t,
        M::GET,
        &format!("/admin/v1/clients?partner={partner_id}"),
        Some(&write),
        None,
        None,
    )
    .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "k-1's client and k-burst's"
    );
}

#[tokio::test]
async fn the_admin_api_can_have_a_listener_of_its_own() {
    let t = TestServer::start_with_admin(tessera_server::ServedAt::Listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let (_, read) = admin_token(&t, &[AdminScope::Read]).await;
    let r = call(&t, M::GET, "/admin/v1/partners", Some(&read), None, None).await;
    assert_eq!(r.status, 404, "not on the public listener");
    let admin = format!("http://{}", t.server.as_ref().unwrap().admin_addr.unwrap());
    let r = call_at(
        &admin,
        &t.http,
        M::GET,
        "/admin/v1/partners",
        Some(&read),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call_at(
        &admin,
        &t.http,
        M::GET,
        "/.well-known/jwks.json",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 404, "only the admin API there");
    let r = call_at(
        &admin,
        &t.http,
        M::GET,
        "/admin/v1/partners",
        None,
        None,
        None,
    )
    .await;
    problem(&r, 401, "unauthenticated");
}

/// The document describes the routes as served: every documented operation exists and is
/// guarded (401 without a token, not 404 or 405), answers 403 to a token without the scope it
/// needs (GET needs `read`, every other method `write`), and documents both answers.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let t = TestServer::start().await;
    let (_, read) = admin_token(&t, &[AdminScope::Read]).await;
    let (_, write) = admin_token(&t, &[AdminScope::Write]).await;
    let doc = call(&t, M::GET, "/admin/v1/openapi.json", None, None, None).await;
    assert_eq!(doc.status, 200, "public: {}", doc.body);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 21, "{:?}", paths.keys().collect::<Vec<_>>());
    let mut operations = 0;
    for (path, item) in paths {
        // Path parameters filled with an id that exists nowhere.
        let concrete = path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "0190a1b2-no-such-id"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let concrete = concrete.trim_start_matches("/admin/v1");
        for (method, op) in item.as_object().unwrap() {
            let method: M = method.to_uppercase().parse().unwrap();
            operations += 1;
            let path = format!("/admin/v1{concrete}");
            let r = call(&t, method.clone(), &path, None, None, None).await;
            problem(&r, 401, "unauthenticated");
            let lacking = if method == M::GET { &write } else { &read };
            let r = call(&t, method.clone(), &path, Some(lacking), None, None).await;
            problem(&r, 403, "insufficient-scope");
            for status in ["401", "403"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
    assert!(operations > paths.len(), "{operations} operations");
    assert_eq!(
        doc.body["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    std::fs::write(
        std::env::temp_dir().join("tessera-admin-openapi.json"),
        serde_json::to_vec_pretty(&doc.body).unwrap(),
    )
    .unwrap();
}

/// Argon2 never runs past the password queue: with the queue full (a flood of password checks),
/// an admin call that must hash a password answers 503 "busy" with `Retry-After` at once and
/// writes nothing; once the queue drains, the same call succeeds.
#[tokio::test]
async fn a_password_change_waits_its_turn_in_the_password_queue() {
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let partners = async || {
        let r = call(&t, M::GET, "/admin/v1/partners", Some(&write), None, None).await;
        r.body["items"].as_array().map(Vec::len)
    };
    let before = partners().await;
    let passwords = t.engine().passwords();
    let flood: Vec<_> = (0..passwords.capacity())
        .filter_map(|_| passwords.admit(None))
        .collect();
    assert_eq!(flood.len(), passwords.capacity());
    let body = json!({"name": "Acme", "email": "ops@acme.example",
                      "password": "a-long-partner-secret", "scopes": "crm"});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(body.clone()),
        None,
    )
    .await;
    problem(&r, 503, "busy");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(partners().await, before, "nothing written");
    drop(flood);
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(body),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Found by an attack: a client that hung up a few milliseconds into a create left the change
/// made but not audited, and its Idempotency-Key locked for a day. Each call now runs to its
/// end: every retry gets its answer, and every change has its audit event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_leaves_no_unaudited_change_and_no_locked_key() {
    use tokio::io::AsyncWriteExt;
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let p = call(&t, M::POST, "/admin/v1/partners", Some(&write),
        Some(json!({"name": "Acme", "email": "ops@acme.example", "password": "a-long-partner-secret", "scopes": "crm"})),
        None).await;
    let partner_id = p.body["partner_id"].as_str().unwrap().to_string();
    let addr = t.base.trim_start_matches("http://").to_string();
    let rounds = 12;
    for i in 0..rounds {
        let body = json!({"partner_id": partner_id, "name": format!("App {i}"),
                          "grant_types": ["client_credentials"], "scopes": "crm"})
        .to_string();
        let request = format!(
            "POST /admin/v1/clients HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {write}\r\n\
             Idempotency-Key: hang-{i}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        // Hang up after a different short while each round.
        tokio::time::sleep(std::time::Duration::from_millis(i as u64)).await;
        drop(s);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let again = call(
            &t,
            M::POST,
            "/admin/v1/clients",
            Some(&write),
            Some(serde_json::from_str(&body).unwrap()),
            Some(&format!("hang-{i}")),
        )
        .await;
        assert_eq!(again.status, 201, "round {i}: {}", again.body);
    }
    let listed = call(
        &t,
        M::GET,
        &format!("/admin/v1/clients?partner={partner_id}&limit=100"),
        Some(&write),
        None,
        None,
    )
    .await;
    let made = listed.body["items"].as_array().unwrap().len();
    assert_eq!(made, rounds, "one client per key");
    t.engine().flush_audit().await;
    let audited = t
        .store
        .query_audit(&tessera_core::audit::AuditQuery {
            event: Some("admin.change".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|e| e.detail["change"] == "client.create")
        .count();
    assert_eq!(audited, made, "every change audited");
}

#[tokio::test]
async fn audit_pages_skip_nothing_within_one_second() {
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    for i in 0..12 {
        let r = call(
            &t,
            M::POST,
            "/admin/v1/scopes",
            Some(&write),
            Some(json!({"names": [format!("s{i}")]})),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = 0;
    let mut path = "/admin/v1/audit?event=admin.change&limit=3".to_string();
    loop {
        let page = call(&t, M::GET, &path, Some(&write), None, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen += page.body["items"].as_array().unwrap().len();
        match page.body["next"].as_i64() {
            Some(next) => {
                path = format!("/admin/v1/audit?event=admin.change&limit=3&before={next}")
            }
            None => break,
        }
    }
    // The test server's two scope registrations, the 12 additions and the admin token's
    // creation.
    assert_eq!(seen, 15);
    let r = call(
        &t,
        M::GET,
        "/admin/v1/audit?limit=0",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 422, "validation");
    let r = call(
        &t,
        M::DELETE,
        "/admin/v1/partners",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 405, "method-not-allowed");
    let r = call(
        &t,
        M::GET,
        "/admin/v1/partners/%FF",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    let big = json!({"names": ["x".repeat(70_000)]});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/scopes",
        Some(&write),
        Some(big),
        None,
    )
    .await;
    problem(&r, 413, "too-large");
    let r = call(
        &t,
        M::POST,
        "/admin/v1/scopes",
        Some(&write),
        Some(json!({"names": "crm"})),
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    assert!(
        r.body["detail"].as_str().unwrap().contains("names"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn each_public_api_has_its_openapi_document() {
    let t = TestServer::start().await;
    for (path, operations) in [
        ("/v2/openapi.json", 6),
        ("/oauth/openapi.json", 9),
        ("/openapi.json", 15),
        ("/admin/v1/openapi.json", 26),
    ] {
        let doc = t.get(path, None).await;
        assert_eq!(doc.status, 200, "{path}");
        assert!(
            doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
            "{path}"
        );
        // Every operation has an operationId, unique in its document (code generators refuse
        // a document where two operations share one: both dialects' `revoke` and `token` did).
        let ids: Vec<&str> = doc.body["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(ids.len(), operations, "{path}");
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert!(ids.iter().all(|id| !id.is_empty()), "{path}: {ids:?}");
        assert_eq!(unique.len(), ids.len(), "{path}: {ids:?}");
    }
}

/// Found by the last attack: a typo in a listing's filter returned everything unfiltered, and
/// a token revoked while a write's body was still arriving made the write anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_filters_are_refused_and_a_token_revoked_mid_upload_writes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestServer::start().await;
    let (id, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let r = call(
        &t,
        M::GET,
        "/admin/v1/clients?partner_id=p",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 400, "bad-request");

    let body = json!({"names": ["revraced"]}).to_string();
    let addr = t.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /admin/v1/scopes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {write}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..body.len() - 1])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    ops::revoke_admin_token(t.store.as_ref(), &Operator("test".into()), &id, unix_now())
        .await
        .unwrap();
    s.write_all(&body.as_bytes()[body.len() - 1..])
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let scopes = t.store.list_scopes().await.unwrap();
    assert!(!scopes.iter().any(|s| s == "revraced"), "nothing written");
}

/// I6 through the admin API: `DELETE /admin/v1/users/{id}/sessions` ends a user's browser
/// sessions, as `tessera user sessions revoke` does; the next `/authorize` needs a sign-in.
#[tokio::test]
async fn the_admin_api_ends_a_users_browser_sessions() {
    let t = TestServer::start().await;
    let (_, read) = admin_token(&t, &[AdminScope::Read]).await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let s = crate::authcode::setup(&t, &[], false).await;
    let mut browser = crate::authcode::Agent::new(&t.base);
    let path = crate::authcode::authorize_path("standard", &s.client_id, &[]);
    crate::authcode::authorize(&mut browser, &s, &path).await;
    // Signed in: the next authorization needs no page.
    let r = browser.get(&path).await;
    assert!(r.query().contains_key("code"), "{:?}", r.location);

    let sessions = format!("/admin/v1/users/{}/sessions", s.user_id);
    let r = call(&t, M::DELETE, &sessions, Some(&read), None, None).await;
    problem(&r, 403, "insufficient-scope");
    let r = call(&t, M::DELETE, &sessions, Some(&write), None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["sessions"], 1, "{}", r.body);
    let r = browser.get(&path).await;
    assert!(
        r.location.as_deref().unwrap().starts_with("/oauth/login"),
        "the session outlived its revocation: {:?}",
        r.location
    );
    let r = call(
        &t,
        M::DELETE,
        "/admin/v1/users/no-such-user/sessions",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 404, "not-found");
}

/// An admin change in flight on the admin API's own listener when the node shuts down is
/// finished and answered, as a token request on the main listener is (found by an attack: the
/// side listeners were aborted once the main one had drained, and the change was lost).
#[tokio::test]
async fn an_admin_change_in_flight_at_shutdown_is_finished() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut t = TestServer::start_with_admin(tessera_server::ServedAt::Listen(
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let server = t.server.take().unwrap();
    let admin = server.admin_addr.unwrap();
    let body = json!({"names": ["late"]}).to_string();
    let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let head = format!(
        "POST /admin/v1/scopes HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {write}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body.as_bytes()[..4]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The process exits when shutdown returns: it must wait for the request.
    assert!(
        !shutdown.is_finished(),
        "shutdown returned while an admin request was in flight"
    );
    tcp.write_all(&body.as_bytes()[4..]).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 20"), "{answer:?}");
    shutdown.await.unwrap().unwrap();
    let scopes = t.store.list_scopes().await.unwrap();
    assert!(scopes.iter().any(|s| s == "late"), "the change was lost");
}

/// The body of a client-credentials client of `partner_id`, named `name`.
fn new_client(partner_id: &str, name: &str) -> Value {
    json!({"partner_id": partner_id, "name": name,
           "grant_types": ["client_credentials"], "scopes": "crm"})
}

/// Run SQL on the test server's SQLite database through a connection of its own.
async fn sql(db: &str, statement: &'static str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(db).await.unwrap();
    sqlx::query(statement).execute(&mut c).await.unwrap();
}

/// How many clients of `partner_id` are named `name`.
async fn clients_named(t: &TestServer, token: &str, partner_id: &str, name: &str) -> usize {
    let path = format!("/admin/v1/clients?partner={partner_id}");
    let r = call(t, M::GET, &path, Some(token), None, None).await;
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .count()
}

/// Onboard the partner Acme (`crm`) through the API; its id.
async fn acme(t: &TestServer, write: &str) -> String {
    let p = call(
        t,
        M::POST,
        "/admin/v1/partners",
        Some(write),
        Some(json!({"name": "Acme", "email": "ops@acme.example",
                    "password": "a-long-partner-secret", "scopes": "crm"})),
        None,
    )
    .await;
    p.body["partner_id"].as_str().unwrap().to_string()
}

/// A server on a SQLite file the test can reach (its URL), an admin token that may write, and a
/// partner made through the API.
async fn on_a_file() -> (TestServer, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let master = tessera_core::master::MasterKey::generate();
    let t = TestServer::start_on(dir, db.clone(), crate::support::config(), master).await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let partner_id = acme(&t, &write).await;
    (t, db, write, partner_id)
}

/// One write path, audited atomically (issue 23, item 2). The change and its audit event are
/// one transaction: with the audit trail refusing appends, a create answers 503 and leaves
/// nothing, so the retry under the same `Idempotency-Key` creates exactly one client. (When
/// the event was appended after the change had committed, the first attempt made the client,
/// answered 503 and freed the key, and the retry made a second.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_audit_event_cannot_be_written_is_not_made() {
    let (t, db, write, partner_id) = on_a_file().await;
    let body = new_client(&partner_id, "Only Once");

    sql(
        &db,
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
              BEGIN SELECT RAISE(ABORT, 'the audit trail is unavailable'); END",
    )
    .await;
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(body.clone()),
        Some("k-1"),
    )
    .await;
    problem(&r, 503, "unavailable");
    sql(&db, "DROP TRIGGER refuse_audit").await;
    assert_eq!(
        clients_named(&t, &write, &partner_id, "Only Once").await,
        0,
        "nothing made"
    );

    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(body),
        Some("k-1"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(clients_named(&t, &write, &partner_id, "Only Once").await, 1);
}

/// The other failure path: the change is made and audited, but its answer cannot be kept for
/// replays (the `Idempotency-Key` table refuses to store answers). The caller still gets the answer,
/// with the secret shown once, instead of a 503 for a change that was made; a repeat of the key
/// is a conflict, never a second client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_cannot_be_kept_still_reaches_the_caller_once() {
    let (t, db, write, partner_id) = on_a_file().await;
    let body = new_client(&partner_id, "Kept Or Not");

    sql(
        &db,
        "CREATE TRIGGER refuse_answers BEFORE UPDATE OF status, body ON idempotency_keys \
              BEGIN SELECT RAISE(ABORT, 'answers cannot be kept'); END",
    )
    .await;
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(body.clone()),
        Some("k-2"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body["client_secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    sql(&db, "DROP TRIGGER refuse_answers").await;

    let again = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(body),
        Some("k-2"),
    )
    .await;
    problem(&again, 409, "idempotency-conflict");
    assert_eq!(
        clients_named(&t, &write, &partner_id, "Kept Or Not").await,
        1
    );
}

/// An unknown id in an admin path is `404 not-found`, whatever the kind (partners and clients
/// answered 422, users 404); a partner named in a body (a new client's) stays a `422`.
#[tokio::test]
async fn an_unknown_id_in_a_path_is_not_found_for_every_kind() {
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let missing = "0190a1b2-0000-7000-8000-000000000000";
    let calls: [(M, String, Option<Value>); 11] = [
        (M::GET, format!("/admin/v1/partners/{missing}"), None),
        (
            M::PUT,
            format!("/admin/v1/partners/{missing}/status"),
            Some(json!({"status": "inactive"})),
        ),
        (
            M::PUT,
            format!("/admin/v1/partners/{missing}/password"),
            Some(json!({"password": "a-long-partner-secret"})),
        ),
        (
            M::POST,
            format!("/admin/v1/partners/{missing}/tokens"),
            None,
        ),
        (
            M::DELETE,
            format!("/admin/v1/partners/{missing}/tokens"),
            None,
        ),
        (M::GET, format!("/admin/v1/clients/{missing}"), None),
        (M::POST, format!("/admin/v1/clients/{missing}/secret"), None),
        (
            M::PUT,
            format!("/admin/v1/clients/{missing}/status"),
            Some(json!({"status": "disabled"})),
        ),
        (M::GET, format!("/admin/v1/users/{missing}"), None),
        (
            M::PUT,
            format!("/admin/v1/users/{missing}/password"),
            Some(json!({"password": "a-long-user-secret"})),
        ),
        (M::POST, format!("/admin/v1/keys/{missing}/revoke"), None),
    ];
    for (method, path, body) in calls {
        let r = call(&t, method.clone(), &path, Some(&write), body, None).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        problem(&r, 404, "not-found");
    }
    let r = call(
        &t,
        M::POST,
        "/admin/v1/clients",
        Some(&write),
        Some(
            json!({"partner_id": missing, "name": "App", "grant_types": ["client_credentials"],
                    "scopes": "crm"}),
        ),
        None,
    )
    .await;
    problem(&r, 422, "validation");
}

/// A 5xx frees its `Idempotency-Key` for the same request to be sent again only when nothing
/// was written: here the write is refused (503) and the retry under the same key runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_that_changed_nothing_frees_its_key() {
    let (t, db, write, partner_id) = on_a_file().await;
    sql(
        &db,
        "CREATE TRIGGER refuse_clients BEFORE INSERT ON clients \
              BEGIN SELECT RAISE(ABORT, 'clients refused'); END",
    )
    .await;
    let post = || keyed_post(&t, &write, "k-free", new_client(&partner_id, "Refused"));
    problem(&post().await, 503, "unavailable");
    sql(&db, "DROP TRIGGER refuse_clients").await;
    let retried = post().await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(clients_named(&t, &write, &partner_id, "Refused").await, 1);
}

/// Found by the attack on issue 23's write path: a PostgreSQL COMMIT slower than the store's
/// deadline answered 503; the guard, finding no `admin.change` of the request in the audit
/// trail yet, freed the key; the commit then landed, and the retry under the same key made a
/// second client with a second live secret. Now the change marks its key carried out in its
/// own transaction, and the release (a conditional DELETE) waits for that commit's row lock:
/// the key stays taken and the retry is told the change was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_slower_than_the_deadline_keeps_its_key() {
    use sqlx::Connection;
    let Some(server) = crate::support::postgres_url("a_commit_slower_than_the_deadline") else {
        return;
    };
    let db = tessera_store::create_scratch_database(&server)
        .await
        .unwrap();
    let options = tessera_store::Options {
        timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let master = tessera_core::master::MasterKey::generate();
    let t = TestServer::start_node(&db, &master, options).await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let partner_id = acme(&t, &write).await;
    // Every commit that inserted a client now takes 1.5 s (a deferred trigger runs at COMMIT),
    // past the store's deadline of 1 s: as a commit waiting on a slow disk or a synchronous
    // standby. (The release then waits half a second for it, within its own deadline.)
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    for statement in [
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON clients \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(statement).execute(&mut c).await.unwrap();
    }
    let post = || keyed_post(&t, &write, "k-slow", new_client(&partner_id, "Slow"));
    problem(&post().await, 503, "unavailable");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    sqlx::query("DROP TRIGGER slow_commit ON clients")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(
        clients_named(&t, &write, &partner_id, "Slow").await,
        1,
        "the slow commit landed"
    );
    let again = post().await;
    problem(&again, 409, "idempotency-conflict");
    assert!(
        again.body["detail"]
            .as_str()
            .unwrap()
            .contains("was carried out"),
        "{}",
        again.body
    );
    assert_eq!(clients_named(&t, &write, &partner_id, "Slow").await, 1);
}

/// `POST /admin/v1/clients` with `body` under the `Idempotency-Key` `key`.
async fn keyed_post(t: &TestServer, token: &str, key: &str, body: Value) -> Resp {
    let r = t
        .http
        .post(format!("{}/admin/v1/clients", t.base))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::support::resp(r).await
}

/// Found by the attack on issue 23's write path: a NUL character (`\u0000` in JSON, `%00` in a
/// path, query or form) reached PostgreSQL, which refuses it in text, and came back as a 503
/// with Retry-After, inviting endless retries (and a new user's password was hashed first). It
/// is refused as input now, as a 400 of each dialect, on every backend.
#[tokio::test]
async fn a_nul_character_is_refused_as_input_not_answered_unavailable() {
    let t = TestServer::start().await;
    let (_, write) = admin_token(&t, &[AdminScope::Read, AdminScope::Write]).await;
    let nul_email = json!({"name": "P", "email": "a\u{0}@x.example",
                           "password": "a-long-partner-secret", "scopes": "crm"});
    let r = call(
        &t,
        M::POST,
        "/admin/v1/partners",
        Some(&write),
        Some(nul_email),
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    let r = call(
        &t,
        M::PUT,
        "/admin/v1/partners/%00/status",
        Some(&write),
        Some(json!({"status": "inactive"})),
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    let r = call(
        &t,
        M::GET,
        "/admin/v1/clients?partner=%00",
        Some(&write),
        None,
        None,
    )
    .await;
    problem(&r, 400, "bad-request");
    let partners = call(&t, M::GET, "/admin/v1/partners", Some(&write), None, None).await;
    assert_eq!(partners.body["items"].as_array().unwrap().len(), 0);

    // The partner dialect's JSON and the standard dialect's form.
    let p = t.partner().await;
    let r = t
        .post("/v2/accounts", Some(&p.basic()), r#"{"name":"a\u0000b"}"#)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "VALIDATION_FAILED", "{}", r.body);
    let r = t
        .http
        .post(format!("{}/oauth/token", t.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=a%00b&password=x&client_id=c&client_secret=s")
        .send()
        .await
        .unwrap();
    let r = crate::support::resp(r).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_request", "{}", r.body);
}
