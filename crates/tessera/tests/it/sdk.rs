//! The SDK's token source (issue 12, item 4, first step): one machine-token request however
//! many tasks ask at once, and one renewal when the token is due for it. Counted through the
//! server's own audit trail (a `token.issued` row per token answered).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tessera_client::MachineTokenSource;
use tessera_core::audit::AuditQuery;

use crate::support::{TestServer, claims};

async fn tokens_issued(t: &TestServer, partner_id: &str) -> usize {
    t.engine().flush_audit().await;
    t.store
        .query_audit(&AuditQuery {
            partner_id: Some(partner_id.into()),
            event: Some("token.issued".into()),
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .len()
}

async fn ask_100(source: &Arc<MachineTokenSource>) -> Vec<String> {
    join_all((0..100).map(|_| {
        let source = Arc::clone(source);
        async move { source.token().await.unwrap() }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_send_one_request_and_one_renewal() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let source = Arc::new(MachineTokenSource::new(t.client(&p), "crm"));
    let tokens = ask_100(&source).await;
    assert!(tokens.iter().all(|x| *x == tokens[0]));
    assert_eq!(
        tokens_issued(&t, &p.id).await,
        1,
        "one request for 100 callers"
    );
    // Cached: asking again sends nothing.
    assert_eq!(source.token().await.unwrap(), tokens[0]);
    assert_eq!(tokens_issued(&t, &p.id).await, 1);

    // A source that renews once less than its lifetime minus a second remains: due after 1 s.
    let c = claims(&tokens[0]);
    let lifetime = (c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap()) as u64;
    let due = Arc::new(
        MachineTokenSource::new(t.client(&p), "crm")
            .renew_before(Duration::from_secs(lifetime - 1)),
    );
    let first = due.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let renewed = ask_100(&due).await;
    assert!(renewed.iter().all(|x| *x == renewed[0]));
    assert_ne!(renewed[0], first, "renewed when due");
    assert_eq!(
        tokens_issued(&t, &p.id).await,
        3,
        "the second source: its first token and one renewal for 100 callers"
    );
}
