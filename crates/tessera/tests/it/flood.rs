//! Argon2 under a flood (issue 10, item 3): the queue in front of the hashing threads is bounded,
//! so uncached password checks past it are answered "busy" at once (503 with `Retry-After`)
//! instead of queueing without bound, and requests that need no Argon2 (a cached credential, a
//! client secret) keep being served.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::join_all;

use crate::support::{TestServer, config, machine_token_body};

#[tokio::test]
async fn a_flood_of_uncached_checks_is_refused_at_once_past_the_queue() {
    let mut c = config();
    c.password_queue = 0; // only the running checks: the smallest queue shows the bound
    let t = TestServer::start_with(c).await;
    let p = t.partner().await;
    let o = t.onboard(&["client_credentials"]).await;
    // The integration's pair is verified before the flood, and cached. (A verification that
    // overlaps a change-feed event caches nothing, so the set-up settles first and sends the
    // pair until a request costs no Argon2.)
    let body = machine_token_body("crm");
    t.settle().await;
    for attempt in 0.. {
        let before = t.engine().passwords().verifications();
        let r = t.post("/v2/oauth/token", Some(&p.basic()), &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if attempt > 0 && t.engine().passwords().verifications() == before {
            break;
        }
        assert!(attempt < 5, "the pair is never cached");
    }

    let junk = (0..40).map(|i| {
        let auth = format!(
            "Basic {}",
            STANDARD.encode(format!("junk-{i}@flood.example:not-a-password-{i}"))
        );
        let (t, body) = (&t, body.clone());
        async move {
            let r = t.post("/v2/oauth/token", Some(&auth), &body).await;
            (r.status, r.headers.get("retry-after").cloned())
        }
    });
    let cached = async {
        // While the flood runs: a cached credential and a client secret need no Argon2.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let a = t
            .post("/v2/oauth/token", Some(&p.basic()), &body)
            .await
            .status;
        let b = t
            .form(
                "/oauth/token",
                Some(&o.basic()),
                &[("grant_type", "client_credentials")],
            )
            .await
            .status;
        (a, b)
    };
    let (answers, (cached_partner, client_secret)) = tokio::join!(join_all(junk), cached);
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "some checks past the queue are refused: {answers:?}"
    );
    assert!(
        busy.iter()
            .all(|(_, retry)| retry.as_ref().is_some_and(|v| v == "1")),
        "with Retry-After: {busy:?}"
    );
    assert!(
        answers.iter().all(|(s, _)| *s == 503 || *s == 401),
        "{answers:?}"
    );
    assert_eq!((cached_partner, client_secret), (200, 200));
    assert_eq!(
        t.engine().passwords().queued(),
        0,
        "every place is released"
    );
}

/// Issue 18 row 12: the queue was first come, first served, so one source flooding junk
/// credentials kept it full and refused every real sign-in (31 of 31 over 12 s); and with a
/// share of a quarter per requester, the attack on the fix denied everyone from five sources.
/// One requester now holds at most an eighth of the places and the last quarter is kept for
/// requesters that hold none: a flood from five sources is refused at its shares, and others'
/// first sign-ins (uncached, each an Argon2 check) are all served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_a_handful_of_sources_leaves_room_for_everyone_else() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut c = config();
    c.password_queue = 6;
    let t = Arc::new(
        TestServer::start_behind(
            tessera_server::forwarded::TrustedProxies::new(
                vec!["127.0.0.1/32".parse().unwrap()],
                Default::default(),
            ),
            c,
        )
        .await,
    );
    let partners = join_all((0..6).map(|_| t.partner())).await;
    let body = machine_token_body("crm");
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..48)
        .map(|i| {
            let (t, stop, body) = (Arc::clone(&t), Arc::clone(&stop), body.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let r = t
                        .http
                        .post(t.url("/v2/oauth/token"))
                        .header("x-forwarded-for", format!("203.0.113.{}", i % 5 + 1))
                        .basic_auth(format!("junk-{i}-{n}@flood.example"), Some("not-it"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    answers.push(r.status().as_u16());
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut real = Vec::new();
    for (i, p) in partners.iter().enumerate() {
        let r = t
            .http
            .post(t.url("/v2/oauth/token"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .basic_auth(&p.email, Some(&p.password))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        real.push(r.status().as_u16());
    }
    stop.store(true, Ordering::Relaxed);
    let mut junk = Vec::new();
    for f in flood {
        junk.extend(f.await.unwrap());
    }
    assert_eq!(
        real, [200; 6],
        "real first sign-ins refused under the flood"
    );
    assert!(junk.contains(&503), "the flood was refused at its share");
    assert!(junk.iter().all(|s| *s == 503 || *s == 401), "{junk:?}");
}
