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
    // The integration's pair is verified before the flood (and so cached).
    let body = machine_token_body("crm");
    assert_eq!(
        t.post("/v2/oauth/token", Some(&p.basic()), &body)
            .await
            .status,
        200
    );

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
