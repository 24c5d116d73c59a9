//! Issue 18 row 6: behind a load balancer every browser was the balancer's address, so one
//! anonymous requester kept everyone's `/authorize` at 429, and the audit trail's `ip` was the
//! balancer's. With `--trusted-proxy`, a request from the proxy is its client's; from any other
//! peer, the headers are ignored.

use tessera_core::audit::AuditQuery;
use tessera_server::forwarded::{ForwardedHeader, TrustedProxies};

use crate::authcode::{self, authorize_path};
use crate::support::{TestServer, config};

/// `/authorize` through "the balancer" (this test, on loopback), for the client at `xff`.
async fn authorize_as(t: &TestServer, path: &str, header: &str, value: &str) -> u16 {
    // The redirect to the sign-in page is the answer; not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(t.url(path))
        .header(header, value)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status != 303 && status != 429 {
        panic!("{status}: {}", r.text().await.unwrap());
    }
    status
}

async fn behind(proxies: &[&str], header: ForwardedHeader) -> TestServer {
    let mut c = config();
    c.flow_burst = 3;
    TestServer::start_behind(
        TrustedProxies::new(proxies.iter().map(|p| p.parse().unwrap()).collect(), header),
        c,
    )
    .await
}

#[tokio::test]
async fn one_requester_behind_the_balancer_throttles_only_itself() {
    let t = behind(&["127.0.0.0/8"], ForwardedHeader::XForwardedFor).await;
    let s = authcode::setup(&t, &[], false).await;
    let path = authorize_path("standard", &s.client_id, &[]);
    let xff = "x-forwarded-for";

    // The flooder uses its burst and is refused; forging the left of the chain (the balancer
    // appends the address it saw) does not give it another budget.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(authorize_as(&t, &path, xff, &format!("10.9.9.{i}, 203.0.113.66")).await);
    }
    assert_eq!(&statuses[..3], [303, 303, 303], "{statuses:?}");
    // The budget refills one every 2 s: on a slow machine a later request may find it refilled.
    assert_eq!(statuses[3], 429, "{statuses:?}");

    // 24 other users behind the same balancer are served.
    for i in 0..24 {
        let status = authorize_as(&t, &path, xff, &format!("198.51.100.{i}")).await;
        assert_eq!(status, 303, "user {i} refused for the flooder's requests");
    }

    // The audit trail names the client, not the balancer: a partner sign-in that fails.
    let r = t
        .http
        .post(t.url("/v2/oauth/token"))
        .header(xff, "198.51.100.200")
        .basic_auth(&s.partner.email, Some("not the password"))
        .header("content-type", "application/json")
        .body(crate::support::machine_token_body("crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    t.engine().flush_audit().await;
    let events = t
        .store
        .query_audit(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let ips: Vec<_> = events
        .iter()
        .filter(|e| e.event == "partner.sign_in_failed")
        .filter_map(|e| e.ip.as_deref())
        .collect();
    assert_eq!(ips, ["198.51.100.200"], "{events:?}");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    // No proxy trusted (the default): a client rotating X-Forwarded-For is still one requester.
    // And a proxy network that does not contain the peer: the same.
    for proxies in [&[][..], &["10.0.0.0/8"]] {
        let t = behind(proxies, ForwardedHeader::XForwardedFor).await;
        let s = authcode::setup(&t, &[], false).await;
        let path = authorize_path("standard", &s.client_id, &[]);
        let mut statuses = Vec::new();
        for i in 0..6 {
            let xff = format!("198.51.100.{i}");
            statuses.push(authorize_as(&t, &path, "x-forwarded-for", &xff).await);
        }
        assert!(statuses[3..].contains(&429), "{proxies:?}: {statuses:?}");
    }
}

#[tokio::test]
async fn forwarded_is_read_when_chosen_and_x_forwarded_for_then_ignored() {
    let t = behind(&["127.0.0.1/32"], ForwardedHeader::Forwarded).await;
    let s = authcode::setup(&t, &[], false).await;
    let path = authorize_path("standard", &s.client_id, &[]);
    // The client forges X-Forwarded-For; the balancer writes Forwarded.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let status = http
            .get(t.url(&path))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("forwarded", r#"for="[2001:db8::66]:4711";proto=https"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        statuses.push(status);
    }
    assert_eq!(&statuses[..4], [303, 303, 303, 429], "{statuses:?}");
    // Another IPv6 client, in another /64, has its own budget.
    let status = authorize_as(&t, &path, "forwarded", "for=\"[2001:db8:1::1]\"").await;
    assert_eq!(status, 303);
}
