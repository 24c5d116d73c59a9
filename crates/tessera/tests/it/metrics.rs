//! `/metrics` (issue 11, item 1): a scrape in the Prometheus text format in which each family
//! moves when its event happens. The recorder is process-wide and other tests run beside this
//! one, so each check compares a scrape before and after this test's own requests.

use std::collections::HashMap;

use crate::support::{TestServer, exchange_body, machine_token_body, refresh_body};

/// Every sample of a scrape: `name{labels}` as rendered → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name
                && labels
                    .iter()
                    .all(|(l, v)| rest.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(t: &TestServer) -> HashMap<String, f64> {
    let r = t.http.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    samples(&r.text().await.unwrap())
}

#[tokio::test]
async fn each_family_of_metrics_moves_with_its_event() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let before = scrape(&t).await;

    // Two machine tokens (an Argon2 check, then a cached credential), a wrong password.
    for _ in 0..2 {
        let r = t
            .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
            .await;
        assert_eq!(r.status, 200);
    }
    let wrong = b.replace(&b[10..14], "AAAA");
    let r = t
        .post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
        .await;
    assert_eq!(r.status, 401);
    // An exchange and a rotation.
    let mt = t
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let acc = t
        .post("/v2/accounts", Some(&b), r#"{"name":"M"}"#)
        .await
        .data("account_id");
    let rt = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await
        .data("refresh_token");
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    assert_eq!(r.status, 200);
    // Revoking the family writes a change that the feed applies.
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": r.data("refresh_token")}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    // The same machine token twice through the exchange: a verified-token cache hit.
    t.post(
        "/v2/oauth/token",
        Some(&b),
        &exchange_body(&mt, &acc, "crm"),
    )
    .await;
    t.settle().await;

    let after = scrape(&t).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (value(&after, name, labels), value(&before, name, labels));
        assert!(a > b, "{name} {labels:?} did not move: {b} -> {a}");
    };
    moved(
        "tessera_http_requests_total",
        &[
            ("route", "/v2/oauth/token"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    moved(
        "tessera_http_request_seconds_count",
        &[("route", "/v2/oauth/token")],
    );
    moved(
        "tessera_tokens_issued_total",
        &[("grant", "client_credentials"), ("caller", "partner")],
    );
    moved(
        "tessera_tokens_issued_total",
        &[("grant", "token_exchange"), ("caller", "partner")],
    );
    moved(
        "tessera_errors_total",
        &[("dialect", "partner"), ("code", "OAUTH_PARTNER_NOT_FOUND")],
    );
    moved("tessera_refresh_total", &[("outcome", "rotated")]);
    moved("tessera_refresh_total", &[("outcome", "family_revoked")]);
    moved(
        "tessera_cache_requests_total",
        &[("cache", "credential"), ("result", "hit")],
    );
    moved(
        "tessera_cache_requests_total",
        &[("cache", "credential"), ("result", "miss")],
    );
    moved(
        "tessera_cache_requests_total",
        &[("cache", "token"), ("result", "hit")],
    );
    moved("tessera_password_check_seconds_count", &[]);
    moved("tessera_db_call_seconds_count", &[("backend", "sqlite")]);
    moved("tessera_change_feed_applied_total", &[]);
    // Read when scraped.
    assert!(value(&after, "tessera_db_pool_connections", &[("state", "max")]) >= 1.0);
    assert!(value(&after, "tessera_password_queue_capacity", &[]) >= 1.0);
    assert_eq!(
        value(
            &after,
            "tessera_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

/// A locked-out username shows in its counter.
#[tokio::test]
async fn lockouts_are_counted() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let before = scrape(&t).await;
    // Lock the partner's email out: wrong passwords until the bucket refuses.
    let wrong = b.replace(&b[10..14], "AAAA");
    let mut locked = false;
    for _ in 0..12 {
        let r = t
            .post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
            .await;
        if r.headers.contains_key("retry-after") {
            locked = true;
            break;
        }
    }
    assert!(locked, "the lockout never refused");
    let after = scrape(&t).await;
    assert!(
        value(&after, "tessera_lockouts_total", &[])
            > value(&before, "tessera_lockouts_total", &[])
    );
}

/// `--metrics-listen ADDR` serves `/metrics` there and not on the main listener.
#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0", "--database", &db])
        .env("TESSERA_MASTER_KEY", "66".repeat(32))
        .env("TESSERA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut main, mut metrics) = (None, None);
    while main.is_none() || metrics.is_none() {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("tessera listening on http://").nth(1) {
            main = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            metrics = Some(rest.split_whitespace().next().unwrap().to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let http = reqwest::Client::new();
    let scrape = http
        .get(format!("http://{}", metrics.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().await.unwrap().contains("tessera_build_info"));
    let main = http
        .get(format!("http://{}/metrics", main.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// By default (`local`), `/metrics` and the admin API answer connections from this machine
/// that no proxy forwarded, and nobody else: a forwarded request and a connection to the
/// machine's network address get 404, as for a page that does not exist.
#[tokio::test]
async fn metrics_and_the_admin_api_answer_only_this_machine_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("local.db").display());
    let (mut child, addr) =
        crate::support::spawn_serve_at("0.0.0.0:0", &["--database", &db], &"66".repeat(32));
    let port = addr.rsplit(':').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let get = |host: String, path: &'static str, forwarded: bool| {
        let mut r = http.get(format!("http://{host}:{port}{path}"));
        if forwarded {
            r = r.header("X-Forwarded-For", "203.0.113.9");
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let local = "127.0.0.1".to_string();
    assert_eq!(get(local.clone(), "/metrics", false).await, 200);
    // The admin API is there (and wants its token).
    assert_eq!(get(local.clone(), "/admin/v1/scopes", false).await, 401);
    assert_eq!(get(local.clone(), "/metrics", true).await, 404);
    assert_eq!(get(local.clone(), "/admin/v1/scopes", true).await, 404);
    // Not even the admin API's own "no such route" answer tells that it is mounted here (found
    // by an attack): a forwarded request gets the page every unknown path gets.
    let body = |path: &'static str| {
        let r = http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("X-Forwarded-For", "203.0.113.9");
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(
        body("/admin/v1/no-such-route").await,
        body("/no-such-route").await
    );
    assert_eq!(body("/admin/v1").await, body("/no-such-route").await);
    // The API itself answers everyone.
    assert_eq!(get(local.clone(), "/healthz", true).await, 200);
    // From the machine's own network address, the peer is not loopback.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    if probe.connect("10.255.255.255:9").is_ok()
        && let Ok(own) = probe.local_addr()
        && !own.ip().is_loopback()
        && !own.ip().is_unspecified()
    {
        let own = own.ip().to_string();
        assert_eq!(get(own.clone(), "/metrics", false).await, 404);
        assert_eq!(get(own.clone(), "/admin/v1/scopes", false).await, 404);
        assert_eq!(get(own, "/healthz", false).await, 200);
    } else {
        eprintln!("no non-loopback address: that part is skipped");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
