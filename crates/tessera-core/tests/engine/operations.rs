//! The operator's operations ([`tessera_core::operations`]) and listings
//! ([`tessera_core::inventory`]) below HTTP and the CLI, with the clock passed in: what each
//! change records in the audit trail, what a refused change leaves behind (nothing), a rotated
//! secret's overlap at its boundary, and cursor pages.

use tessera_core::audit::{AuditEvent, AuditQuery};
use tessera_core::inventory::{self, PageRequest};
use tessera_core::model::GrantType;
use tessera_core::operations::AdminError;
use tessera_core::operations::{self as ops, Operator};
use tessera_core::password::Passwords;
use tessera_core::scope::ScopeSet;

use crate::support::*;

fn by() -> Operator {
    Operator("cli:operator".into())
}

/// The `admin.change` events recorded so far, newest first.
async fn changes(w: &World) -> Vec<AuditEvent> {
    w.store
        .query_audit(&AuditQuery {
            event: Some("admin.change".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

fn create_client(partner_id: &str, scopes: &str) -> ops::NewClient {
    ops::NewClient::try_from(wire_client(partner_id, scopes)).unwrap()
}

/// The admin API's body for [`create_client`].
fn wire_client(partner_id: &str, scopes: &str) -> ops::CreateClient {
    ops::CreateClient {
        partner_id: partner_id.into(),
        name: "Back office app".into(),
        grant_types: vec!["client_credentials".into()],
        scopes: scopes.into(),
        redirect_uris: Vec::new(),
        frame_origins: Vec::new(),
        dev: false,
        pkce_plain: false,
        require_par: false,
        allow_registration: false,
    }
}

#[tokio::test]
async fn each_change_is_audited_with_its_operator_and_subject() {
    let w = World::new().await;
    let input = ops::NewPartner {
        name: "Acme".into(),
        email: "Ops@Acme.example".into(),
        password: "a-long-partner-secret".into(),
        scopes: ScopeSet::from_names(["crm"]),
        org_code: Some("ACME".into()),
    };
    let created = ops::create_partner(w.store.as_ref(), &Passwords::new(), &by(), &input, T0)
        .await
        .unwrap();
    assert_eq!(created.org_code, "ACME");
    let client = ops::create_client(
        w.store.as_ref(),
        &by(),
        &create_client(&created.partner_id, "crm"),
        T0 + 1,
    )
    .await
    .unwrap();

    // The world's own set-up (its scopes, its partner) is audited too: only this partner's.
    let events: Vec<_> = changes(&w)
        .await
        .into_iter()
        .filter(|e| e.partner_id.as_deref() == Some(created.partner_id.as_str()))
        .collect();
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.at,
                e.detail["change"].as_str().unwrap(),
                e.detail["by"].as_str().unwrap(),
                e.partner_id.as_deref(),
                e.client_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                T0 + 1,
                "client.create",
                "cli:operator",
                Some(created.partner_id.as_str()),
                Some(client.client_id.as_str()),
            ),
            (
                T0,
                "partner.create",
                "cli:operator",
                Some(created.partner_id.as_str()),
                None,
            ),
        ]
    );
    assert_eq!(
        events[1].username.as_deref(),
        Some("ops@acme.example"),
        "as it is stored, so that a search by username finds it"
    );
    let recorded = serde_json::to_string(&events).unwrap();
    assert!(
        !recorded.contains("a-long-partner-secret") && !recorded.contains(&client.client_secret),
        "no secret in the audit trail: {recorded}"
    );
    // What the listing shows is what was made (the email normalized).
    let view = inventory::partner(w.store.as_ref(), &created.partner_id)
        .await
        .unwrap();
    assert_eq!(
        (view.name.as_str(), view.email.as_str()),
        ("Acme", "ops@acme.example")
    );
}

#[test]
fn the_wire_input_is_parsed_once_into_typed_grant_types_and_scopes() {
    let parsed = |grant_types: &[&str], scopes: &str| {
        ops::NewClient::try_from(ops::CreateClient {
            grant_types: grant_types.iter().map(|g| g.to_string()).collect(),
            ..wire_client("p", scopes)
        })
    };
    let every = parsed(
        &[
            "client_credentials",
            "token_exchange",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "token-exchange",
        ],
        "crm,transport",
    )
    .unwrap();
    assert_eq!(
        every.grant_types,
        [
            GrantType::ClientCredentials,
            GrantType::TokenExchange,
            GrantType::TokenExchange,
            GrantType::TokenExchange,
        ]
    );
    assert_eq!(every.scopes, ScopeSet::from_names(["crm", "transport"]));
    // One grant type per element: a comma-joined list is the CLI's flag syntax, split there.
    let joined = parsed(&["client_credentials,password"], "crm");
    assert!(
        matches!(joined, Err(AdminError::Invalid(_))),
        "{:?}",
        joined.err()
    );
    let bad_scope = parsed(&["password"], "crm tr\u{7f}nsport");
    assert!(
        matches!(bad_scope, Err(AdminError::Invalid(_))),
        "{:?}",
        bad_scope.err()
    );
    // Scope names given one by one are each one name.
    assert!(ops::scope_names(&["crm".into(), "billing".into()]).is_ok());
    for bad in ["crm billing", "crm,billing", ""] {
        let refused = ops::scope_names(&[bad.into()]);
        assert!(matches!(refused, Err(AdminError::Invalid(_))), "{bad:?}");
    }
}

#[tokio::test]
async fn a_refused_change_writes_nothing_and_records_nothing() {
    let w = World::new().await;
    let before = changes(&w).await.len();
    let outside = ops::create_client(
        w.store.as_ref(),
        &by(),
        &create_client(&w.partner.id, "crm billing"),
        T0,
    )
    .await;
    assert!(
        matches!(&outside, Err(AdminError::ScopesOutsidePartner(s)) if s == &["billing"]),
        "{:?}",
        outside.err()
    );
    let unknown = ops::create_client(
        w.store.as_ref(),
        &by(),
        &create_client(&w.partner.id, "crm nonsense"),
        T0,
    )
    .await;
    assert!(
        matches!(&unknown, Err(AdminError::UnknownScopes(s)) if s == &["nonsense"]),
        "{:?}",
        unknown.err()
    );
    let none = ops::NewClient {
        grant_types: Vec::new(),
        ..create_client(&w.partner.id, "crm")
    };
    let none = ops::create_client(w.store.as_ref(), &by(), &none, T0).await;
    assert!(
        matches!(none, Err(AdminError::Invalid(_))),
        "{:?}",
        none.err()
    );
    let weak = ops::set_partner_password(
        w.store.as_ref(),
        &Passwords::new(),
        &by(),
        &w.partner.id,
        "short",
        T0,
    )
    .await;
    assert!(matches!(weak, Err(AdminError::Invalid(_))), "{weak:?}");
    assert_eq!(changes(&w).await.len(), before);
    let clients = inventory::clients(
        w.store.as_ref(),
        Some(&w.partner.id),
        &PageRequest::default(),
    )
    .await
    .unwrap();
    assert!(clients.items.is_empty(), "{:?}", clients.items);
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_previous_one_working_for_the_overlap_and_no_longer() {
    let w = World::new().await;
    let made = ops::create_client(
        w.store.as_ref(),
        &by(),
        &create_client(&w.partner.id, "crm"),
        T0,
    )
    .await
    .unwrap();
    let rotated = ops::rotate_client_secret(w.store.as_ref(), &by(), &made.client_id, Some(60), T0)
        .await
        .unwrap();
    assert_eq!(rotated.previous_secret_valid_until, Some(T0 + 60));
    w.engine.sync(T0).await.unwrap();
    let auth = async |secret: &str, now| {
        w.engine
            .authenticate_client(&made.client_id, secret, now)
            .await
            .is_ok()
    };
    assert!(auth(&rotated.client_secret, T0).await);
    assert!(
        auth(&made.client_secret, T0 + 59).await,
        "inside the overlap"
    );
    assert!(!auth(&made.client_secret, T0 + 60).await, "at its end");
    assert!(auth(&rotated.client_secret, T0 + 60).await);
}

#[tokio::test]
async fn listings_page_by_cursor_and_an_unknown_id_is_not_found() {
    let w = World::new().await;
    for _ in 0..4 {
        w.other_partner().await;
    }
    // Five partners in all, in pages of two: 2, 2, 1, each page after the last one's cursor.
    let mut seen = Vec::new();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let page = inventory::partners(
            w.store.as_ref(),
            &PageRequest {
                after: after.clone(),
                limit: Some(2),
            },
        )
        .await
        .unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|p| p.partner_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "no partner twice: {seen:?}");
    assert!(seen.contains(&w.partner.id));

    for limit in [0, inventory::MAX_PAGE + 1] {
        let r = inventory::partners(
            w.store.as_ref(),
            &PageRequest {
                after: None,
                limit: Some(limit),
            },
        )
        .await;
        assert!(matches!(r, Err(AdminError::Invalid(_))), "limit {limit}");
    }
    let missing = "0190a1b2-0000-7000-8000-000000000000";
    assert!(matches!(
        inventory::partner(w.store.as_ref(), missing).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        inventory::user(w.store.as_ref(), missing).await,
        Err(AdminError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_revoked_token_and_a_reset_password_name_their_subjects() {
    let w = World::new().await;
    let made = ops::create_partner_token(w.store.as_ref(), &by(), &w.partner.id, T0)
        .await
        .unwrap();
    let which = ops::PartnerTokens::One(&made.partner_token);
    ops::revoke_partner_tokens(w.store.as_ref(), &by(), which, T0 + 1)
        .await
        .unwrap();
    let user = w.user(tessera_core::model::Role::Admin, None).await;
    ops::set_user_password(
        w.store.as_ref(),
        &Passwords::new(),
        &by(),
        &w.partner.id,
        &user.username,
        "another-long-passphrase-7",
        T0 + 2,
    )
    .await
    .unwrap();
    let events = changes(&w).await;
    let revoked = events
        .iter()
        .find(|e| e.detail["change"] == "partner_token.revoke")
        .unwrap();
    assert_eq!(revoked.partner_id.as_deref(), Some(w.partner.id.as_str()));
    let reset = events
        .iter()
        .find(|e| e.detail["change"] == "user.set_password")
        .unwrap();
    assert_eq!(reset.detail["user_id"], user.id.as_str());
}
