//! Rate limits hold across nodes (issue 22, item 6): three nodes on one PostgreSQL database
//! allow a partner its `--token-rate-limit` and a requester its `/authorize` budget once, not
//! once per node. Counted in memory, as before, three nodes allowed three times as much.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tessera_core::master::MasterKey;

use crate::support::{TestServer, config, machine_token_body};

async fn three_nodes(engine: tessera_core::EngineConfig) -> Option<Vec<Arc<TestServer>>> {
    three_nodes_with(engine, Default::default()).await
}

async fn three_nodes_with(
    engine: tessera_core::EngineConfig,
    options: tessera_store::Options,
) -> Option<Vec<Arc<TestServer>>> {
    Some(three_nodes_on(engine, options).await?.1)
}

/// Three nodes and the URL of their database.
async fn three_nodes_on(
    engine: tessera_core::EngineConfig,
    options: tessera_store::Options,
) -> Option<(String, Vec<Arc<TestServer>>)> {
    let admin = crate::support::postgres_url("cluster_limits")?;
    let db = tessera_store::create_scratch_database(&admin)
        .await
        .unwrap();
    let master = MasterKey::generate();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node = TestServer::start_node_with(&db, &master, options.clone(), engine.clone()).await;
        nodes.push(Arc::new(node));
    }
    Some((db, nodes))
}

#[tokio::test]
async fn three_nodes_allow_a_partner_its_token_rate_once() {
    let Some(nodes) = three_nodes(limited()).await else {
        return;
    };
    hammer_for_three_seconds(&nodes, 0.75).await;
}

/// Requests for clients that do not exist are looked up in the database each time, and with
/// enough of them they fill a node's connection pool. Against a release build an attack made
/// leases miss a 500 ms deadline that sent the node to counting on its own (227 admitted in
/// 5 s for 120); the deadline is gone and leases have connections of their own. In one process
/// the flood slows the partner's own requests as much as the leases, so this test holds the
/// bound under the flood but does not reproduce that attack (it passes with the old deadline).
#[tokio::test]
async fn a_flood_of_unknown_clients_does_not_unshare_the_limit() {
    let options = tessera_store::Options {
        pool_size: Some(2),
        // Long enough that no lease fails on a busy test machine: a failed lease is the
        // documented fallback; what is tested is that slowness alone does not unshare.
        timeout: Duration::from_secs(10),
    };
    let Some(nodes) = three_nodes_with(limited(), options).await else {
        return;
    };
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut flood = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().cycle().take(96).enumerate() {
        let (node, flooding) = (Arc::clone(node), Arc::clone(&flooding));
        flood.spawn(async move {
            let mut n = 0u64;
            while flooding.load(Ordering::Relaxed) {
                n += 1;
                let _ = node
                    .http
                    .post(node.url("/oauth/token"))
                    .basic_auth(format!("nobody-{i}-{n}"), Some("wrong"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The flood slows everything on this machine, the partner's own requests too: only the
    // bound is asked of it.
    hammer_for_three_seconds(&nodes, 0.0).await;
    flooding.store(false, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
}

/// Found by the third attack: `/authorize` requests from thousands of addresses (each a
/// requester's first request, so each a lease) queued the lease connections the token limit
/// shared with the page throttles until a token lease timed out, and then every node counted
/// the token limit alone for 5 s (up to 2.1 times the budget over 18 s). The page throttles'
/// leases now have connections of their own. Here a trigger holds each of their leases past
/// `--db-timeout` (2 s) rather than a thousand connections per node, and each flood request
/// comes from an address of its own on 127/8. With one lane for both, the first token request
/// on each node waits behind them, its lease times out, and the three nodes then count alone:
/// about three times the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorize_flood_from_many_addresses_does_not_unshare_the_token_limit() {
    let Some((db, nodes)) = three_nodes_on(limited(), Default::default()).await else {
        return;
    };
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_flows() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
         CREATE TRIGGER slow_flows BEFORE INSERT OR UPDATE ON rate_budgets FOR EACH ROW
         WHEN (NEW.key LIKE 'flows:%') EXECUTE FUNCTION slow_flows();",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut flood = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().cycle().take(48).enumerate() {
        let (node, flooding) = (Arc::clone(node), Arc::clone(&flooding));
        flood.spawn(async move {
            let mut n = 0u32;
            while flooding.load(Ordering::Relaxed) {
                n += 1;
                let from = std::net::Ipv4Addr::new(127, 1 + i as u8, (n >> 8) as u8, n as u8);
                let http = reqwest::Client::builder()
                    .local_address(std::net::IpAddr::V4(from))
                    .build()
                    .unwrap();
                let path = "/oauth/authorize?response_type=code&client_id=nobody";
                let _ = http.get(node.url(path)).send().await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another partner's first token on each node, in the flood's queue.
    let basic = nodes[0].partner().await.basic();
    let mut first = tokio::task::JoinSet::new();
    for node in &nodes {
        let (node, basic) = (Arc::clone(node), basic.clone());
        first.spawn(async move {
            node.post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
                .await
                .status
        });
    }
    while let Some(status) = first.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    hammer_for_three_seconds(&nodes, 0.0).await;
    flooding.store(false, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
}

const RATE: u32 = 20;

fn limited() -> tessera_core::EngineConfig {
    let mut engine = config();
    engine.token_rate_limit = RATE;
    engine
}

/// Nine clients of one partner, three per node, ask as fast as they are answered for 3 s: the
/// nodes together admit the burst and the rate, within 10%, and at least `least_share` of it.
async fn hammer_for_three_seconds(nodes: &[Arc<TestServer>], least_share: f64) {
    let basic = nodes[0].partner().await.basic();
    let (admitted, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let started = Instant::now();
    let window = Duration::from_secs(3);
    let mut tasks = tokio::task::JoinSet::new();
    // Three clients per node, each asking as fast as it is answered.
    for node in nodes.iter().cycle().take(9) {
        let (node, basic) = (Arc::clone(node), basic.clone());
        let (admitted, refused) = (Arc::clone(&admitted), Arc::clone(&refused));
        tasks.spawn(async move {
            while started.elapsed() < window {
                let r = node
                    .post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
                    .await;
                match r.status {
                    200 => admitted.fetch_add(1, Ordering::Relaxed),
                    429 => {
                        assert!(r.headers.contains_key("retry-after"), "{}", r.body);
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    other => panic!("{other}: {}", r.body),
                };
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::Relaxed);
    // The budget: the burst at once, then the rate for the rest of the window.
    let budget = f64::from(RATE) * (1.0 + elapsed);
    eprintln!(
        "{admitted} admitted, {} refused in {elapsed:.2} s; budget {budget:.0}",
        refused.load(Ordering::Relaxed)
    );
    assert!(
        f64::from(admitted) <= budget * 1.1,
        "three nodes admitted {admitted}, more than the budget of {budget:.0} plus 10%"
    );
    // Leases and remembered refusals strand little: the partner gets most of its rate.
    assert!(
        f64::from(admitted) >= budget * least_share,
        "three nodes admitted only {admitted} of a budget of {budget:.0}"
    );
    if least_share > 0.0 {
        assert!(
            refused.load(Ordering::Relaxed) > 0,
            "the load did exceed the rate"
        );
    }
}

#[tokio::test]
async fn three_nodes_allow_a_requester_its_authorize_burst_once() {
    let mut engine = config();
    engine.flow_burst = 4;
    let Some(nodes) = three_nodes(engine).await else {
        return;
    };
    let mut statuses = Vec::new();
    for node in nodes.iter().cycle().take(12) {
        let r = node
            .http
            .get(node.url("/oauth/authorize?response_type=code&client_id=nobody"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let admitted = statuses.iter().filter(|s| **s != 429).count();
    // Four at once and one every 2 s: a slow machine may see one more refilled.
    assert!(
        (4..=5).contains(&admitted),
        "the requester was admitted {admitted} times by three nodes: {statuses:?}"
    );
}

/// Units a node leased and did not spend must not top up a later burst: after a few requests
/// on one node and a pause in which the shared budget refills, 300 requests at once over three
/// nodes get the burst and what the rate adds while they run, not the burst plus the first
/// node's leftovers (they lived a second; now a quarter of one).
#[tokio::test]
async fn units_a_node_leased_earlier_do_not_top_up_a_burst() {
    let Some(nodes) = three_nodes(limited()).await else {
        return;
    };
    let basic = nodes[0].partner().await.basic();
    let token = |node: &Arc<TestServer>| {
        let (node, basic) = (Arc::clone(node), basic.clone());
        async move {
            node.post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
                .await
                .status
        }
    };
    // Each node checks the password once; then every lease ends and the budget is whole.
    for node in &nodes {
        assert_eq!(token(node).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The first node leases as it serves six, one after another.
    for _ in 0..6 {
        assert_eq!(token(&nodes[0]).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(620)).await;
    let started = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for node in nodes.iter().cycle().take(300) {
        burst.spawn(token(node));
    }
    let mut admitted = 0;
    while let Some(status) = burst.join_next().await {
        admitted += u32::from(status.unwrap() == 200);
    }
    let most = f64::from(RATE) * (1.0 + started.elapsed().as_secs_f64()) + 1.0;
    assert!(
        f64::from(admitted) <= most,
        "{admitted} admitted at once, more than the burst and the rate allow ({most:.1})"
    );
}
