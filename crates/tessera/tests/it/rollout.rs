//! A rolling replacement behind a load balancer loses no request (issue 19, item 4). Two nodes
//! of the real binary serve one PostgreSQL database behind a small TCP load balancer that, like
//! a Kubernetes Service, sends new connections only to nodes whose `/readyz` answered 200 at its
//! last probe (every 100 ms). Clients keep exchanging tokens over keep-alive connections while
//! each node in turn gets a successor and then SIGTERM. The old node must answer 503 on
//! `/readyz` at once, keep serving through `--shutdown-grace`, close every keep-alive connection
//! after its next response, and exit 0; not one client request may fail. Runs when
//! `TESSERA_TEST_POSTGRES_URL` is set (`.ci/run` sets it).

use std::net::SocketAddr;
use std::process::{Child, Command};

use crate::support::Spawned;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::support::{exchange_body, machine_token_body, spawn_serve};

const KEY: &str = "5555555555555555555555555555555555555555555555555555555555555555";
const GRACE: &str = "2";

/// The nodes the balancer knows, and which of them passed their last readiness probe.
#[derive(Default)]
struct Pool {
    nodes: Mutex<Vec<(SocketAddr, bool)>>,
    next: AtomicUsize,
}

impl Pool {
    fn add(&self, addr: SocketAddr) {
        self.nodes.lock().unwrap().push((addr, false));
    }

    fn pick(&self) -> Option<SocketAddr> {
        let nodes = self.nodes.lock().unwrap();
        let ready: Vec<SocketAddr> = nodes.iter().filter(|n| n.1).map(|n| n.0).collect();
        if ready.is_empty() {
            return None;
        }
        Some(ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()])
    }
}

/// Probe every node's `/readyz` every 100 ms, as an endpoints controller would.
async fn probe(pool: Arc<Pool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    loop {
        let addrs: Vec<SocketAddr> = pool.nodes.lock().unwrap().iter().map(|n| n.0).collect();
        for addr in addrs {
            let ready = match http.get(format!("http://{addr}/readyz")).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            for node in pool.nodes.lock().unwrap().iter_mut() {
                if node.0 == addr {
                    node.1 = ready;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forward each accepted connection, byte for byte, to a ready node.
async fn balance(listener: TcpListener, pool: Arc<Pool>) {
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        let Some(node) = pool.pick() else {
            continue; // the client sees a closed connection: a failure the test counts
        };
        tokio::spawn(async move {
            if let Ok(mut upstream) = TcpStream::connect(node).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

fn node(db: &str, issuer: &str) -> (Spawned, SocketAddr) {
    let (child, addr) = spawn_serve(
        &[
            "--database",
            db,
            "--issuer",
            issuer,
            "--shutdown-grace",
            GRACE,
        ],
        KEY,
    );
    (Spawned(child), addr.parse().unwrap())
}

fn cli(db: &str, args: &[&str], stdin: &str) {
    let this = std::path::Path::new(env!("CARGO_BIN_EXE_tessera"));
    crate::support::cli_json(this, db, args, stdin, KEY);
}

async fn ready(pool: &Pool, addr: SocketAddr) {
    let start = Instant::now();
    while !pool
        .nodes
        .lock()
        .unwrap()
        .iter()
        .any(|n| n.0 == addr && n.1)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{addr} never ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM `old`, and check from outside that it drains as promised: readiness fails at once,
/// requests are still served, and the process exits 0 once the grace period is over.
async fn replace(old: &mut Child, addr: SocketAddr) {
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &old.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let status = loop {
        let r = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            break r.status();
        }
        assert!(sent.elapsed() < Duration::from_millis(500), "still ready");
    };
    assert_eq!(status, 503);
    // Still serving, on a fresh connection, but telling keep-alive clients to leave.
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["connection"], "close");
    let exit = tokio::task::block_in_place(|| old.wait().unwrap());
    assert!(exit.success(), "the old node exits 0: {exit:?}");
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "the node left before its grace period ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_replacement_under_load_fails_no_request() {
    let Some(admin) = crate::support::postgres_url("rollout") else {
        return;
    };
    let db = tessera_store::create_scratch_database(&admin)
        .await
        .unwrap();
    cli(&db, &["scope", "add", "crm"], "");
    cli(
        &db,
        &[
            "partner",
            "create",
            "--name",
            "Rollout",
            "--email",
            "p@rollout.example",
            "--password-stdin",
            "--scopes",
            "crm",
        ],
        "amber-lantern-canyon-17\n",
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pool = Arc::new(Pool::default());
    let (mut a, a_addr) = node(&db, &base);
    let (mut b, b_addr) = node(&db, &base);
    pool.add(a_addr);
    pool.add(b_addr);
    tokio::spawn(probe(Arc::clone(&pool)));
    tokio::spawn(balance(listener, Arc::clone(&pool)));
    ready(&pool, a_addr).await;
    ready(&pool, b_addr).await;

    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "p@rollout.example:amber-lantern-canyon-17"
        )
    );
    let http = reqwest::Client::new();
    let account = http
        .post(format!("{base}/v2/accounts"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .body(r#"{"name":"A"}"#)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["data"]["account_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Eight clients, each on its own keep-alive connections: a machine token, then an
    // exchange of it (a durable refresh token written to the database), again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, served, failed, failures) = (
            Arc::clone(&stop),
            Arc::clone(&served),
            Arc::clone(&failed),
            Arc::clone(&failures),
        );
        let (url, auth, account) = (
            format!("{base}/v2/oauth/token"),
            auth.clone(),
            account.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let post = |body: String| {
                http.post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
            };
            while !stop.load(Ordering::Relaxed) {
                let machine = match post(machine_token_body("crm")).await {
                    Ok(r) if r.status() == 200 => {
                        r.json::<serde_json::Value>().await.unwrap()["data"]["access_token"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("machine token: {other:?}"));
                        continue;
                    }
                };
                served.fetch_add(1, Ordering::Relaxed);
                match post(exchange_body(&machine, &account, "crm")).await {
                    Ok(r) if r.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("exchange: {other:?}"));
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Replace A with C, then B with D: each successor ready before its predecessor leaves.
    let (c, c_addr) = node(&db, &base);
    pool.add(c_addr);
    ready(&pool, c_addr).await;
    replace(&mut a.0, a_addr).await;
    let before_second = served.load(Ordering::Relaxed);
    let (d, d_addr) = node(&db, &base);
    pool.add(d_addr);
    ready(&pool, d_addr).await;
    replace(&mut b.0, b_addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("{served} requests served across the rollout, {failed} failed");
    drop((c, d));
    assert_eq!(failed, 0, "{:?}", failures.lock().unwrap());
    assert!(
        served > before_second && before_second > 100,
        "the load ran throughout: {before_second} then {served}"
    );
}
