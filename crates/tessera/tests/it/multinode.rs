//! Many nodes on one PostgreSQL database behave as one server (issue 5). These run when
//! `TESSERA_TEST_POSTGRES_URL` names a database whose role may CREATE DATABASE (`.ci/run` starts
//! the machine's PostgreSQL and sets it); each test works in a scratch database of its own.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tessera_core::master::MasterKey;
use tessera_core::unix_now;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{
    TestServer, exchange_body, machine_token_body, refresh_body, within_one_second,
};

/// A scratch database, or `None` (the test is skipped) without PostgreSQL.
async fn scratch() -> Option<String> {
    let admin = crate::support::postgres_url("multinode")?;
    Some(
        tessera_store::create_scratch_database(&admin)
            .await
            .unwrap(),
    )
}

fn kid(token: &str) -> String {
    let h = token.split('.').next().unwrap();
    let v: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).unwrap(),
    )
    .unwrap();
    v["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn three_nodes_behave_as_one() {
    let Some(db) = scratch().await else { return };
    let master = MasterKey::generate();
    let n1 = TestServer::start_node(&db, &master, Default::default()).await;
    let n2 = TestServer::start_node(&db, &master, Default::default()).await;
    let n3 = TestServer::start_node(&db, &master, Default::default()).await;
    let p = n1.partner().await;
    let b = p.basic();

    // Issued on the first, exchanged on the second, refreshed on the third.
    let mt = n1
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let acc = n2
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    let r = n2
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (at, rt) = (r.data("access_token"), r.data("refresh_token"));
    let r = n3
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt2 = r.data("refresh_token");

    // Revoked on the first, refused on the second within a second.
    let r = n1
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": mt}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    within_one_second("machine-token revocation", || async {
        n2.post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await
        .code()
            == "OAUTH_TOKEN_UNKNOWN_OR_REVOKED"
    })
    .await;
    let r = n1
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": rt2}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    within_one_second("family revocation", || async {
        n2.engine().verify_token(&at, unix_now()).is_err()
            && n3.engine().verify_token(&at, unix_now()).is_err()
    })
    .await;

    // A key rotated by the CLI is used and published by all three within a second.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["keys", "rotate", "--alg", "EdDSA", "--database", &db])
        .env("TESSERA_MASTER_KEY", master.to_hex().as_str())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    for n in [&n1, &n2, &n3] {
        within_one_second("key rotation", || async {
            let t = n
                .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
                .await
                .data("access_token");
            let jwks = n.get("/.well-known/jwks.json", None).await;
            kid(&t) == new_kid
                && jwks.body["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kid"] == new_kid.as_str())
        })
        .await;
    }

    // Deactivating a partner with the CLI stops it on every node (cached credentials included).
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "partner",
            "set-status",
            "--partner",
            &p.id,
            "--status",
            "inactive",
            "--database",
            &db,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    for n in [&n1, &n2, &n3] {
        within_one_second("deactivation", || async {
            n.post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
                .await
                .code()
                == "OAUTH_PARTNER_INACTIVE"
        })
        .await;
    }
}

#[tokio::test]
async fn a_hundred_concurrent_refreshes_across_nodes_leave_one_live_head() {
    let Some(db) = scratch().await else { return };
    let master = MasterKey::generate();
    let nodes = [
        TestServer::start_node(&db, &master, Default::default()).await,
        TestServer::start_node(&db, &master, Default::default()).await,
        TestServer::start_node(&db, &master, Default::default()).await,
    ];
    let p = nodes[0].partner().await;
    let b = p.basic();
    let mt = nodes[0]
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let acc = nodes[0]
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    let rt = nodes[1]
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await
        .data("refresh_token");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (http, url, b, body) = (
            nodes[i % 3].http.clone(),
            nodes[i % 3].url("/v2/oauth/token"),
            b.clone(),
            refresh_body(&rt),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("Authorization", b)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap();
            (status, v)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        match status {
            200 => winners.push(v["data"]["refresh_token"].as_str().unwrap().to_string()),
            400 => assert_eq!(v["error"]["code"], "OAUTH_REFRESH_TOKEN_INVALID"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    // Within the grace period a concurrent use is a retry: it may replace the unused successor,
    // but of every token handed out exactly one is the family's live head.
    assert!(!winners.is_empty());
    let mut live = 0;
    for (i, w) in winners.iter().enumerate() {
        let r = nodes[i % 3]
            .post("/v2/oauth/token", Some(&b), &refresh_body(w))
            .await;
        if r.status == 200 {
            live += 1;
        } else {
            assert_eq!(r.code(), "OAUTH_REFRESH_TOKEN_INVALID", "{}", r.body);
        }
    }
    assert_eq!(
        live,
        1,
        "exactly one live head after {} answers",
        winners.len()
    );
}

#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_it_answered() {
    let Some(db) = scratch().await else { return };
    let master = MasterKey::generate();
    let survivor = TestServer::start_node(&db, &master, Default::default()).await;
    let p = survivor.partner().await;
    let b = p.basic();
    let acc = survivor
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");

    let (mut victim, addr) = crate::support::spawn_serve(
        &["--database", &db, "--issuer", crate::support::SHARED_ISSUER],
        master.to_hex().as_str(),
    );
    let victim_url = format!("http://{addr}/v2/oauth/token");
    let mt = survivor
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");

    let probe = reqwest::Client::new()
        .post(&victim_url)
        .header("Authorization", &b)
        .header("Content-Type", "application/json")
        .body(exchange_body(&mt, &acc, "crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200, "{}", probe.text().await.unwrap());

    // Token-exchange traffic from 8 workers against the victim; it is killed mid-stream.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, b, body, stop) = (
            reqwest::Client::new(),
            victim_url.clone(),
            b.clone(),
            exchange_body(&mt, &acc, "crm"),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(r) = http
                    .post(&url)
                    .header("Authorization", &b)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 200
                    && let Ok(v) = r.json::<serde_json::Value>().await
                {
                    answered.push(v["data"]["refresh_token"].as_str().unwrap().to_string());
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = Command::new("kill")
        .args(["-KILL", &victim.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = victim.wait();
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for w in workers {
        answered.extend(w.await.unwrap());
    }
    assert!(
        answered.len() > 20,
        "the victim answered {} exchanges",
        answered.len()
    );
    for rt in &answered {
        let r = survivor
            .post("/v2/oauth/token", Some(&b), &refresh_body(rt))
            .await;
        assert_eq!(
            r.status, 200,
            "a refresh token the killed node answered must work: {}",
            r.body
        );
    }
}

/// A TCP proxy to PostgreSQL that can be cut: existing connections are dropped and new ones
/// are accepted but never answered, as in a network partition.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, rx) = tokio::sync::watch::channel(0u64);
        let c = Arc::clone(&cut);
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let (upstream, c, mut rx) = (upstream.clone(), Arc::clone(&c), rx.clone());
                // Only a generation after this connection's start ends it.
                rx.borrow_and_update();
                tokio::spawn(async move {
                    if c.load(Ordering::SeqCst) {
                        // Black hole: hold the socket until the next generation, answer nothing.
                        let _ = rx.changed().await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            generation,
        }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_fast_and_recovers_by_itself() {
    let Some(db) = scratch().await else { return };
    let (scheme_user, rest) = db.split_once('@').unwrap();
    let (hostport, dbname) = rest.split_once('/').unwrap();
    let proxy = Proxy::start(hostport.to_string()).await;
    let via_proxy = format!("{scheme_user}@127.0.0.1:{}/{dbname}", proxy.port);
    let options = tessera_store::Options {
        pool_size: Some(4),
        timeout: Duration::from_secs(1),
    };
    // With a token rate limit, which nodes of a shared database count in it.
    let mut engine = crate::support::config();
    engine.token_rate_limit = 1_000;
    let t = TestServer::start_node_with(&via_proxy, &MasterKey::generate(), options, engine).await;
    let p = t.partner().await;
    let b = p.basic();
    let mt = t
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let acc = t
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    let exchange = exchange_body(&mt, &acc, "crm");
    assert_eq!(
        t.post("/v2/oauth/token", Some(&b), &exchange).await.status,
        200
    );

    proxy.set_cut(true);
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        let r = t.post("/v2/oauth/token", Some(&b), &exchange).await;
        assert_eq!(
            (r.status, r.code()),
            (503, "SERVICE_UNAVAILABLE"),
            "{}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "503 within --db-timeout"
        );
        // What needs no database keeps working: JWKS and a machine token for cached
        // credentials, the rate limit counted on this node while the database is away (at most
        // one wait of --db-timeout, 1 s here, every 5 s: the lease that failed).
        assert_eq!(t.get("/.well-known/jwks.json", None).await.status, 200);
        let started = Instant::now();
        assert_eq!(
            t.post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
                .await
                .status,
            200
        );
        assert!(
            started.elapsed() < Duration::from_millis(1_600),
            "no more than one wait on the database"
        );
        assert_eq!(t.get("/readyz", None).await.status, 503);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    proxy.set_cut(false);
    let back = Instant::now();
    loop {
        if t.post("/v2/oauth/token", Some(&b), &exchange).await.status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "service resumes by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.get("/readyz", None).await.status, 200);
}

/// Issue 11, item 5: a node applies a change when PostgreSQL announces it (`LISTEN/NOTIFY`),
/// not at its next poll. The nodes here poll once an hour, so only the announcement can make
/// them apply the change within the bound.
#[tokio::test]
async fn nodes_apply_a_change_when_it_is_announced_not_at_their_next_poll() {
    let Some(db) = scratch().await else { return };
    let master = MasterKey::generate();
    let hourly = || {
        let mut c = crate::support::config();
        c.feed_poll = Duration::from_secs(3600);
        c
    };
    let n1 = TestServer::start_node_with(&db, &master, Default::default(), hourly()).await;
    let n2 = TestServer::start_node_with(&db, &master, Default::default(), hourly()).await;
    let o = n1.onboard(&["client_credentials"]).await;
    let auth = o.basic();
    for n in [&n1, &n2] {
        let r = n
            .form(
                "/oauth/token",
                Some(&auth),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    for round in 0..4 {
        let disabled = round % 2 == 0;
        tessera_core::operations::set_client_status(
            n1.store.as_ref(),
            &crate::support::operator(),
            &o.client_id,
            if disabled {
                tessera_core::operations::ClientStatus::Disabled
            } else {
                tessera_core::operations::ClientStatus::Active
            },
            unix_now(),
        )
        .await
        .unwrap();
        let want = if disabled { 401 } else { 200 };
        let started = Instant::now();
        for n in [&n1, &n2] {
            loop {
                let r = n
                    .form(
                        "/oauth/token",
                        Some(&auth),
                        &[("grant_type", "client_credentials")],
                    )
                    .await;
                if r.status == want {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "round {round}: a node did not apply the change within 2 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// Housekeeping runs in a task of its own (issue 23, item 3): while a node's janitor is stuck
/// (here behind a lock another session holds on the table it prunes first), a revocation made
/// on another node still reaches it within a second. Before, the janitor ran inside the
/// change-feed loop, so the revocation waited for it (up to its 20 s budget or the store
/// timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_janitor_does_not_hold_back_a_revocation() {
    use sqlx::Connection;
    let Some(db) = scratch().await else { return };
    let master = MasterKey::generate();
    let mut engine = crate::support::config();
    engine.housekeeping_every = Duration::from_millis(500);
    let options = tessera_store::Options {
        timeout: Duration::from_secs(15),
        ..Default::default()
    };
    let n1 = TestServer::start_node_with(&db, &master, options.clone(), engine.clone()).await;
    let n2 = TestServer::start_node_with(&db, &master, options, engine).await;
    let p = n1.partner().await;
    let b = p.basic();
    let mt = n1
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let acc = n1
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    let exchange = exchange_body(&mt, &acc, "crm");
    assert_eq!(
        n2.post("/v2/oauth/token", Some(&b), &exchange).await.status,
        200
    );

    // Hold the table the janitor prunes first: every node's next housekeeping waits on it.
    let mut blocker = sqlx::PgConnection::connect(&db).await.unwrap();
    let mut held = blocker.begin().await.unwrap();
    sqlx::query("LOCK TABLE login_attempts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // housekeeping is now stuck

    let r = n1
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": mt}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    within_one_second("revocation while the janitor is stuck", || async {
        n2.post("/v2/oauth/token", Some(&b), &exchange).await.code()
            == "OAUTH_TOKEN_UNKNOWN_OR_REVOKED"
    })
    .await;
    held.rollback().await.unwrap();
}
