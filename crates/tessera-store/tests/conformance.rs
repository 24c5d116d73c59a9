//! The store conformance suite: the contracts written on the traits of `tessera_core::store`,
//! checked against every backend. SQLite always; PostgreSQL when `TESSERA_TEST_POSTGRES_URL` is
//! set (each test gets a fresh database; the role needs CREATEDB). `.ci/run` sets it.

use std::sync::Arc;

use tessera_core::keys::{Alg, KeyState, KeyUse, generate_key, generate_key_for};
use tessera_core::master::MasterKey;
use tessera_core::model::{
    Account, Change, Partner, PartnerStatus, PasswordHash, RefreshToken, Role, User,
};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretDigest;
use tessera_core::store::{CodeTaking, Purge, Rotation, Store, StoreError, Successor, TokenOwner};

#[path = "conformance/budgets.rs"]
mod budgets;
#[path = "conformance/revocation.rs"]
mod revocation;

/// The PostgreSQL server to test against (`TESSERA_TEST_POSTGRES_URL`), or `None` (the
/// PostgreSQL half is skipped, and says so) — except under `CI=true` (`.ci/run`), where a
/// missing server is a failure rather than a suite that passes without running.
fn postgres_url() -> Option<String> {
    match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but TESSERA_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("PostgreSQL skipped: TESSERA_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A fresh, empty store of each backend under test.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    stores_at()
        .await
        .into_iter()
        .map(|(name, store, dir, _)| (name, store, dir))
        .collect()
}

/// [`stores`], with each one's database URL.
async fn stores_at() -> Vec<(
    &'static str,
    Arc<dyn Store>,
    Option<tempfile::TempDir>,
    String,
)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let sqlite = tessera_store::open(&url, &tessera_store::Options::default())
        .await
        .unwrap();
    let mut all = vec![("sqlite", sqlite, Some(dir), url)];
    if let Some(admin) = postgres_url() {
        let url = tessera_store::create_scratch_database(&admin)
            .await
            .unwrap();
        let pg = tessera_store::open(&url, &tessera_store::Options::default())
            .await
            .unwrap();
        all.push(("postgres", pg, None, url));
    }
    all
}

/// Make the backend's audit trail refuse (or accept again) every append, as a full disk or a
/// broken table would: a trigger, through a connection of its own.
async fn refuse_audit(backend: &str, url: &str, refuse: bool) {
    let statements: &[&str] = match (backend, refuse) {
        ("sqlite", true) => &["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
              BEGIN SELECT RAISE(ABORT, 'the audit trail is unavailable'); END"],
        ("sqlite", false) => &["DROP TRIGGER refuse_audit"],
        (_, true) => &[
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'the audit trail is unavailable'; END $$",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
        (_, false) => &["DROP TRIGGER refuse_audit ON audit_events"],
    };
    run_sql(backend, url, statements).await;
}

/// Run `statements` on the backend's database through a connection of its own.
async fn run_sql(backend: &str, url: &str, statements: &[&'static str]) {
    use sqlx::Connection;
    if backend == "sqlite" {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(*sql).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(*sql).execute(&mut c).await.unwrap();
        }
    }
}

fn partner(id: &str, email: &str, org: &str) -> Partner {
    Partner {
        id: id.into(),
        name: "P".into(),
        email: email.into(),
        org_code: org.into(),
        status: PartnerStatus::Active,
        scopes: ScopeSet::parse("crm transport").unwrap(),
        password_hash: PasswordHash("$argon2id$x".into()),
        created_at: 1,
    }
}

/// A `token.issued` event as the engine queues it: to partner `partner_id` (its own client),
/// from 192.0.2.1, naming the token `jti`.
fn issued(at: i64, partner_id: &str, jti: &str) -> tessera_core::audit::TokenIssued {
    let caller =
        tessera_core::caller::Caller::Partner(Arc::new(partner(partner_id, "p@example.com", "O")));
    let mut event = tessera_core::audit::TokenIssued::new(
        at,
        &caller,
        "client_credentials",
        partner_id,
        jti,
        false,
    );
    event.ip = Some("192.0.2.1".parse().unwrap());
    event
}

fn refresh(digest: u8, family: &str, expires_at: i64) -> RefreshToken {
    RefreshToken {
        digest: SecretDigest([digest; 32]),
        family_id: family.into(),
        partner_id: "p1".into(),
        client_id: "p1".into(),
        subject: "a1".into(),
        account_id: Some("a1".into()),
        scope: "crm".into(),
        issued_at: 100,
        expires_at,
        family_issued_at: 100,
        rotated_at: None,
        revoked_at: None,
        grant_id: None,
        actor: None,
    }
}

async fn changes(store: &dyn Store) -> Vec<Change> {
    store
        .changes_since(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

#[tokio::test]
async fn partners_are_unique_by_email_and_org_code_and_changes_are_fed() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        assert!(
            matches!(
                s.insert_partner(&partner("p2", "a@x.example", "ORG2"), &[])
                    .await,
                Err(StoreError::Conflict("email"))
            ),
            "{name}"
        );
        assert!(
            matches!(
                s.insert_partner(&partner("p3", "b@x.example", "ORG1"), &[])
                    .await,
                Err(StoreError::Conflict("org_code"))
            ),
            "{name}"
        );
        let p = s.partner_by_email("a@x.example").await.unwrap().unwrap();
        assert_eq!(
            (p.id.as_str(), p.scopes.to_claim()),
            ("p1", "crm transport".into())
        );
        assert!(s.partner_by_id("nope").await.unwrap().is_none());

        let before = s.latest_change().await.unwrap();
        s.set_partner_status("p1", PartnerStatus::Inactive, &[])
            .await
            .unwrap();
        assert_eq!(
            s.partner_by_id("p1").await.unwrap().unwrap().status,
            PartnerStatus::Inactive
        );
        assert!(matches!(
            s.set_partner_status("nope", PartnerStatus::Active, &[])
                .await,
            Err(StoreError::NotFound("partner"))
        ));
        let fed = s.changes_since(before, 10).await.unwrap();
        assert_eq!(fed.len(), 1, "{name}");
        assert_eq!(fed[0].1, Change::Partner("p1".into()));
        assert!(fed[0].0 > before);
    }
}

#[tokio::test]
async fn partner_tokens_resolve_only_for_known_partners() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        let d = SecretDigest([7; 32]);
        s.insert_partner_token("p1", &d, 5, &[]).await.unwrap();
        assert_eq!(
            s.partner_by_token(&d).await.unwrap().as_deref(),
            Some("p1"),
            "{name}"
        );
        assert!(
            s.partner_by_token(&SecretDigest([8; 32]))
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            s.insert_partner_token("nope", &SecretDigest([9; 32]), 5, &[])
                .await,
            Err(StoreError::NotFound("partner"))
        ));
    }
}

#[tokio::test]
async fn accounts_page_in_id_order_and_external_ids_are_unique_per_partner() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        s.insert_partner(&partner("p2", "b@x.example", "ORG2"), &[])
            .await
            .unwrap();
        for (id, owner, ext) in [
            ("a3", "p1", Some("e1")),
            ("a1", "p1", None),
            ("a2", "p1", None),
            ("b1", "p2", Some("e1")),
        ] {
            s.insert_account(&Account {
                id: id.into(),
                partner_id: owner.into(),
                name: "n".into(),
                external_id: ext.map(Into::into),
                created_at: 1,
            })
            .await
            .unwrap();
        }
        assert!(
            matches!(
                s.insert_account(&Account {
                    id: "a4".into(),
                    partner_id: "p1".into(),
                    name: "n".into(),
                    external_id: Some("e1".into()),
                    created_at: 1
                })
                .await,
                Err(StoreError::Conflict("external_id"))
            ),
            "{name}"
        );
        let page: Vec<String> = s
            .list_accounts("p1", None, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(page, ["a1", "a2"]);
        let page: Vec<String> = s
            .list_accounts("p1", Some("a2"), 2)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(page, ["a3"]);
        assert_eq!(
            s.account_by_id("b1").await.unwrap().unwrap().partner_id,
            "p2"
        );
    }
}

#[tokio::test]
async fn users_are_unique_per_partner() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        s.insert_partner(&partner("p2", "b@x.example", "ORG2"), &[])
            .await
            .unwrap();
        let user = |id: &str, p: &str| User {
            id: id.into(),
            partner_id: p.into(),
            account_id: None,
            username: "+15550001".into(),
            role: Role::Customer,
            password_hash: PasswordHash("h".into()),
            first_name: None,
            last_name: None,
            external_id: None,
            signed_up_by: None,
            created_at: 1,
        };
        s.insert_user(&user("u1", "p1"), &[]).await.unwrap();
        s.insert_user(&user("u2", "p2"), &[]).await.unwrap();
        assert!(
            matches!(
                s.insert_user(&user("u3", "p1"), &[]).await,
                Err(StoreError::Conflict("username"))
            ),
            "{name}"
        );
        assert_eq!(
            s.user_by_username("p2", "+15550001")
                .await
                .unwrap()
                .unwrap()
                .id,
            "u2"
        );
        assert!(s.user_by_username("p1", "nobody").await.unwrap().is_none());
    }
}

/// A member who registered and their account are written together: when the username is
/// taken (another registration of the same email won), no account is left behind.
#[tokio::test]
async fn a_member_and_their_account_are_inserted_together() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        let account = |id: &str| Account {
            id: id.into(),
            partner_id: "p1".into(),
            name: "Customer Co".into(),
            external_id: None,
            created_at: 1,
        };
        let member = |id: &str, account: &str| User {
            id: id.into(),
            partner_id: "p1".into(),
            account_id: Some(account.into()),
            username: "ann@customer.example".into(),
            role: Role::Member,
            password_hash: PasswordHash("h".into()),
            first_name: None,
            last_name: None,
            external_id: None,
            signed_up_by: None,
            created_at: 1,
        };
        let (s1, s2) = (Arc::clone(&s), Arc::clone(&s));
        let (a, b) = tokio::join!(
            async move { s1.insert_member(&account("a1"), &member("u1", "a1")).await },
            async move { s2.insert_member(&account("a2"), &member("u2", "a2")).await },
        );
        let (won, lost) = match (a, b) {
            (Ok(()), Err(StoreError::Conflict("username"))) => ("a1", "a2"),
            (Err(StoreError::Conflict("username")), Ok(())) => ("a2", "a1"),
            other => panic!("{name}: one registration wins, the other conflicts: {other:?}"),
        };
        assert!(s.account_by_id(won).await.unwrap().is_some(), "{name}");
        assert!(
            s.account_by_id(lost).await.unwrap().is_none(),
            "{name}: the losing registration left its account"
        );
        let listed = s.list_accounts("p1", None, 10).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn rotation_is_a_compare_and_swap_with_reuse_evidence() {
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let next = Successor {
            digest: SecretDigest([2; 32]),
            expires_at: 2000,
            retry_grace: 0,
            family_lifetime: 1_000_000,
        };

        // Another client's attempt changes nothing.
        assert_eq!(
            s.rotate_refresh_token(
                &SecretDigest([1; 32]),
                &TokenOwner::Client("other".into()),
                &next,
                200
            )
            .await
            .unwrap(),
            Rotation::WrongClient,
            "{name}"
        );
        let Rotation::Rotated(old) = s
            .rotate_refresh_token(
                &SecretDigest([1; 32]),
                &TokenOwner::Client("p1".into()),
                &next,
                200,
            )
            .await
            .unwrap()
        else {
            panic!("{name}: first rotation must win");
        };
        assert_eq!(old.family_id, "f1");
        let succ = s
            .refresh_token(&SecretDigest([2; 32]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                succ.family_id.as_str(),
                succ.issued_at,
                succ.expires_at,
                succ.family_issued_at
            ),
            ("f1", 200, 2000, 100)
        );
        assert_eq!(succ.subject, "a1");

        // A second use reports the rotated record and writes nothing.
        let again = Successor {
            digest: SecretDigest([3; 32]),
            expires_at: 2000,
            retry_grace: 0,
            family_lifetime: 1_000_000,
        };
        match s
            .rotate_refresh_token(
                &SecretDigest([1; 32]),
                &TokenOwner::Client("p1".into()),
                &again,
                201,
            )
            .await
            .unwrap()
        {
            Rotation::NotActive(r) => assert_eq!(r.rotated_at, Some(200), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            s.refresh_token(&SecretDigest([3; 32]))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            s.rotate_refresh_token(
                &SecretDigest([9; 32]),
                &TokenOwner::Client("p1".into()),
                &again,
                201
            )
            .await
            .unwrap(),
            Rotation::Unknown
        );

        // Expired tokens do not rotate.
        s.insert_refresh_token(&refresh(4, "f2", 300))
            .await
            .unwrap();
        let n = Successor {
            digest: SecretDigest([5; 32]),
            expires_at: 2000,
            retry_grace: 0,
            family_lifetime: 1_000_000,
        };
        assert!(matches!(
            s.rotate_refresh_token(
                &SecretDigest([4; 32]),
                &TokenOwner::Client("p1".into()),
                &n,
                300
            )
            .await
            .unwrap(),
            Rotation::NotActive(_)
        ));
    }
}

#[tokio::test]
async fn concurrent_rotations_have_exactly_one_winner() {
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..24u8 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                let next = Successor {
                    digest: SecretDigest([100 + i; 32]),
                    expires_at: 2000,
                    retry_grace: 0,
                    family_lifetime: 1_000_000,
                };
                s.rotate_refresh_token(
                    &SecretDigest([1; 32]),
                    &TokenOwner::Client("p1".into()),
                    &next,
                    200,
                )
                .await
                .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Rotation::Rotated(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "{name}");
    }
}

#[tokio::test]
async fn revoking_a_family_revokes_every_token_and_is_fed() {
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let next = Successor {
            digest: SecretDigest([2; 32]),
            expires_at: 2000,
            retry_grace: 0,
            family_lifetime: 1_000_000,
        };
        s.rotate_refresh_token(
            &SecretDigest([1; 32]),
            &TokenOwner::Client("p1".into()),
            &next,
            200,
        )
        .await
        .unwrap();
        s.insert_refresh_token(&refresh(3, "other", 1000))
            .await
            .unwrap();
        s.revoke_family("f1", 5000, 300).await.unwrap();
        s.revoke_family("f1", 5000, 301).await.unwrap(); // idempotent
        for d in [1u8, 2] {
            assert_eq!(
                s.refresh_token(&SecretDigest([d; 32]))
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at,
                Some(300),
                "{name}"
            );
        }
        assert!(
            s.refresh_token(&SecretDigest([3; 32]))
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        s.revoke_jti("j1", 400).await.unwrap();
        let active = s.active_revocations(399).await.unwrap();
        assert!(active.contains(&("f1".into(), 5000)) && active.contains(&("j1".into(), 400)));
        assert_eq!(
            s.active_revocations(4999).await.unwrap(),
            vec![("f1".to_string(), 5000)]
        );
        assert!(changes(s.as_ref()).await.contains(&Change::Revoked {
            id: "j1".into(),
            until: 400
        }));
    }
}

#[tokio::test]
async fn key_rotation_retires_the_previous_key_atomically() {
    for (name, s, _dir) in stores().await {
        let m = MasterKey::generate();
        let k1 = generate_key(Alg::ES256, &m, 10).unwrap();
        let k2 = generate_key(Alg::EdDSA, &m, 20).unwrap();
        s.rotate_keys(&k1, 10, &[]).await.unwrap();
        s.rotate_keys(&k2, 20, &[]).await.unwrap();
        let keys = s.list_keys().await.unwrap();
        assert_eq!(keys.len(), 2, "{name}");
        assert_eq!(
            (keys[0].kid.as_str(), keys[0].retired_at),
            (k1.kid.as_str(), Some(20))
        );
        assert_eq!(
            (keys[1].kid.as_str(), keys[1].retired_at, keys[1].alg),
            (k2.kid.as_str(), None, Alg::EdDSA)
        );
        assert_eq!(keys[1].private_sealed, k2.private_sealed);
        assert_eq!(keys[1].public_jwk, k2.public_jwk);
        assert_eq!(
            changes(s.as_ref())
                .await
                .iter()
                .filter(|c| **c == Change::Keys)
                .count(),
            2
        );
        // An ID-token key rotates its own lane only: the access key keeps signing.
        let id1 = generate_key_for(KeyUse::IdToken, Alg::RS256, &m, 30).unwrap();
        let id2 = generate_key_for(KeyUse::IdToken, Alg::RS256, &m, 40).unwrap();
        s.rotate_keys(&id1, 30, &[]).await.unwrap();
        s.rotate_keys(&id2, 40, &[]).await.unwrap();
        let keys = s.list_keys().await.unwrap();
        let find = |kid: &str| keys.iter().find(|k| k.kid == kid).unwrap();
        assert_eq!(find(&k2.kid).retired_at, None, "{name}");
        assert_eq!(find(&id1.kid).retired_at, Some(40), "{name}");
        assert_eq!(find(&id2.kid).purpose, KeyUse::IdToken, "{name}");
        assert_eq!(find(&k2.kid).state(&keys, 50), KeyState::Active);
        assert_eq!(find(&id2.kid).state(&keys, 50), KeyState::Active);
        // A pending key of one lane does not stop the other lane's schedule.
        let mut next_id = generate_key_for(KeyUse::IdToken, Alg::RS256, &m, 50).unwrap();
        next_id.activates_at = Some(5_000);
        assert!(s.schedule_key(&next_id, 50).await.unwrap(), "{name}");
        let mut next_access = generate_key(Alg::ES256, &m, 50).unwrap();
        next_access.activates_at = Some(5_000);
        assert!(s.schedule_key(&next_access, 50).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn scopes_register_idempotently_and_the_feed_pages_and_prunes() {
    for (name, s, _dir) in stores().await {
        s.add_scopes(&["crm".into(), "WRITE".into()], None, &[])
            .await
            .unwrap();
        s.add_scopes(&["crm".into()], Some("Your contacts"), &[])
            .await
            .unwrap();
        s.add_scopes(&["crm".into()], None, &[]).await.unwrap();
        let described = s.scope_descriptions().await.unwrap();
        assert!(described.contains(&("crm".to_string(), Some("Your contacts".to_string()))));
        assert!(described.contains(&("WRITE".to_string(), None)));
        assert_eq!(s.list_scopes().await.unwrap(), ["WRITE", "crm"], "{name}");
        let all = s.changes_since(0, 1000).await.unwrap();
        assert_eq!(all.len(), 3);
        let first = s.changes_since(0, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(s.changes_since(first[0].0, 10).await.unwrap().len(), 2);
        assert_eq!(s.latest_change().await.unwrap(), all[2].0);
        assert_eq!(s.prune_changes(i64::MAX).await.unwrap(), 3);
        s.ping().await.unwrap();
    }
}

#[tokio::test]
async fn customer_sign_up_upserts_but_never_takes_over_staff_or_another_clients_users() {
    for (name, s, _dir) in stores().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        let user = |id: &str, username: &str, role: Role, hash: &str| User {
            id: id.into(),
            partner_id: "p1".into(),
            account_id: None,
            username: username.into(),
            role,
            password_hash: PasswordHash(hash.into()),
            first_name: Some("Ann".into()),
            last_name: None,
            external_id: Some("ext-1".into()),
            signed_up_by: None,
            created_at: 1,
        };
        let (u, existed) = s
            .upsert_customer(&user("u1", "+1555", Role::Customer, "h1"))
            .await
            .unwrap();
        assert_eq!((u.id.as_str(), existed), ("u1", false), "{name}");
        let mut again = user("u2", "+1555", Role::Customer, "h2");
        again.first_name = None;
        let (u, existed) = s.upsert_customer(&again).await.unwrap();
        assert_eq!(
            (u.id.as_str(), existed, u.password_hash.0.as_str()),
            ("u1", true, "h2")
        );
        assert_eq!(
            u.first_name.as_deref(),
            Some("Ann"),
            "names are kept when not given"
        );
        assert_eq!(
            s.user_by_id("u1").await.unwrap().unwrap().password_hash.0,
            "h2"
        );
        assert!(changes(s.as_ref()).await.contains(&Change::User {
            partner_id: "p1".into(),
            username: "+1555".into()
        }));

        s.insert_user(&user("a1", "boss@x.example", Role::Admin, "argon"), &[])
            .await
            .unwrap();
        let (u, existed) = s
            .upsert_customer(&user("u3", "boss@x.example", Role::Customer, "h3"))
            .await
            .unwrap();
        assert_eq!((u.id.as_str(), u.role, existed), ("a1", Role::Admin, true));
        assert_eq!(
            s.user_by_id("a1").await.unwrap().unwrap().password_hash.0,
            "argon"
        );

        // The first sign-up that names a client claims a customer for it; another client's
        // sign-up then changes nothing, the owner's still upserts.
        let by = |id: &str, hash: &str, client: &str| User {
            signed_up_by: Some(client.into()),
            first_name: Some(format!("by {client}")),
            ..user(id, "+1555", Role::Customer, hash)
        };
        let (u, _) = s.upsert_customer(&by("u4", "h4", "c1")).await.unwrap();
        assert_eq!(
            (u.id.as_str(), u.signed_up_by.as_deref()),
            ("u1", Some("c1"))
        );
        let (u, existed) = s.upsert_customer(&by("u5", "h5", "c2")).await.unwrap();
        assert_eq!(
            (
                u.id.as_str(),
                existed,
                u.signed_up_by.as_deref(),
                u.password_hash.0.as_str()
            ),
            ("u1", true, Some("c1"), "h4"),
            "{name}"
        );
        let stored = s.user_by_id("u1").await.unwrap().unwrap();
        assert_eq!(
            (
                stored.password_hash.0.as_str(),
                stored.first_name.as_deref()
            ),
            ("h4", Some("by c1"))
        );
        // A browser session of the customer ends when its owner signs it up again (a new
        // clientUserToken is a password reset); another client's refused sign-up ends nothing.
        let session = tessera_core::model::Session {
            digest: SecretDigest([6; 32]),
            user_id: "u1".into(),
            expires_at: 100,
            authenticated_at: 1,
        };
        assert!(
            s.insert_session(&session, &PasswordHash("h4".into()))
                .await
                .unwrap()
        );
        s.upsert_customer(&by("u7", "h7", "c2")).await.unwrap();
        assert!(
            s.session(&SecretDigest([6; 32]), 2)
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        let (u, _) = s.upsert_customer(&by("u6", "h6", "c1")).await.unwrap();
        assert_eq!(
            (u.password_hash.0.as_str(), u.signed_up_by.as_deref()),
            ("h6", Some("c1"))
        );
        assert_eq!(
            s.session(&SecretDigest([6; 32]), 2).await.unwrap(),
            None,
            "{name}"
        );
    }
}

async fn with_user_and_client(s: &dyn Store) {
    s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
        .await
        .unwrap();
    s.insert_user(
        &User {
            id: "u1".into(),
            partner_id: "p1".into(),
            account_id: None,
            username: "ann@x.example".into(),
            role: Role::Member,
            password_hash: PasswordHash("h".into()),
            first_name: None,
            last_name: None,
            external_id: None,
            signed_up_by: None,
            created_at: 1,
        },
        &[],
    )
    .await
    .unwrap();
    s.insert_client(
        &tessera_core::model::Client {
            id: "c1".into(),
            partner_id: "p1".into(),
            name: "App".into(),
            secret_digest: SecretDigest([0; 32]),
            grant_types: vec![tessera_core::model::GrantType::AuthorizationCode],
            scopes: ScopeSet::parse("crm").unwrap(),
            redirect_uris: vec!["https://app.example/cb".into()],
            frame_origins: vec![],
            dev: false,
            pkce_plain: true,
            require_par: true,
            allow_registration: true,
            previous_secret: None,
            disabled: false,
            created_at: 1,
        },
        &[],
    )
    .await
    .unwrap();
    // The client's policy flags round-trip.
    let c = s.client_by_id("c1").await.unwrap().unwrap();
    assert!(c.pkce_plain && c.require_par && c.allow_registration);
}

trait UsedAt {
    fn with_used_at(self, at: i64) -> Self;
}

impl UsedAt for tessera_core::model::AuthorizationCode {
    fn with_used_at(mut self, at: i64) -> Self {
        self.used_at = Some(at);
        self
    }
}

fn code(digest: u8, grant: &str) -> tessera_core::model::AuthorizationCode {
    tessera_core::model::AuthorizationCode {
        digest: SecretDigest([digest; 32]),
        client_id: "c1".into(),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "x".repeat(43),
        code_challenge_method: "S256".into(),
        user_id: "u1".into(),
        account_id: None,
        scope: "crm".into(),
        grant_id: grant.into(),
        family_id: "fam".into(),
        expires_at: 500,
        used_at: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: Some(42),
        sid: Some("sid-1".into()),
    }
}

#[tokio::test]
async fn codes_are_single_use_even_under_concurrency() {
    for (name, s, _dir) in stores().await {
        with_user_and_client(s.as_ref()).await;
        s.insert_authorization_code(&code(1, "g")).await.unwrap();
        // Another client's presentation spends nothing.
        assert_eq!(
            s.take_authorization_code(&SecretDigest([1; 32]), "c2", 99)
                .await
                .unwrap(),
            CodeTaking::OtherClient,
            "{name}"
        );
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                s.take_authorization_code(&SecretDigest([1; 32]), "c1", 100)
                    .await
                    .unwrap()
            }));
        }
        let mut taken = 0;
        for t in tasks {
            match t.await.unwrap() {
                CodeTaking::Taken(c) => {
                    taken += 1;
                    assert_eq!(
                        c,
                        code(1, "g").with_used_at(100),
                        "{name}: the code round-trips"
                    );
                }
                CodeTaking::Reused(c) => assert_eq!(c.used_at, Some(100), "{name}"),
                CodeTaking::Unknown | CodeTaking::OtherClient => {
                    panic!("{name}: the code exists and is c1's")
                }
            }
        }
        assert_eq!(taken, 1, "{name}");
        assert_eq!(
            s.take_authorization_code(&SecretDigest([9; 32]), "c1", 100)
                .await
                .unwrap(),
            CodeTaking::Unknown
        );
    }
}

#[tokio::test]
async fn grants_widen_by_union_and_revocation_takes_their_refresh_families() {
    for (name, s, _dir) in stores().await {
        with_user_and_client(s.as_ref()).await;
        let g1 = s.upsert_grant("u1", "c1", "crm", 10).await.unwrap();
        let g2 = s.upsert_grant("u1", "c1", "billing crm", 11).await.unwrap();
        assert_eq!(g1.id, g2.id, "{name}: one active grant per user and client");
        assert_eq!(g2.scope, "billing crm");
        assert_eq!(s.active_grant("u1", "c1").await.unwrap().unwrap().id, g1.id);
        assert_eq!(s.list_grants("u1").await.unwrap().len(), 1);

        let mut t = refresh(1, "fam-a", 1000);
        t.grant_id = Some(g1.id.clone());
        s.insert_refresh_token(&t).await.unwrap();
        let next = Successor {
            digest: SecretDigest([2; 32]),
            expires_at: 2000,
            retry_grace: 0,
            family_lifetime: 1_000_000,
        };
        s.rotate_refresh_token(
            &SecretDigest([1; 32]),
            &TokenOwner::Client("p1".into()),
            &next,
            20,
        )
        .await
        .unwrap();
        assert_eq!(
            s.refresh_token(&SecretDigest([2; 32]))
                .await
                .unwrap()
                .unwrap()
                .grant_id,
            Some(g1.id.clone()),
            "{name}: the successor keeps the grant"
        );
        assert!(s.revoke_grant("u1", "c1", 9000, 30, &[]).await.unwrap());
        assert!(!s.revoke_grant("u1", "c1", 9000, 31, &[]).await.unwrap());
        assert!(s.active_grant("u1", "c1").await.unwrap().is_none());
        assert_eq!(
            s.grant_by_id(&g1.id).await.unwrap().unwrap().revoked_at,
            Some(30)
        );
        for d in [1u8, 2] {
            assert!(
                s.refresh_token(&SecretDigest([d; 32]))
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at
                    .is_some()
            );
        }
        assert!(changes(s.as_ref()).await.contains(&Change::Revoked {
            id: "fam-a".into(),
            until: 9000
        }));
        // Consent again: a new grant.
        let g3 = s.upsert_grant("u1", "c1", "crm", 40).await.unwrap();
        assert_ne!(g3.id, g1.id);
    }
}

#[tokio::test]
async fn requests_and_sessions_expire() {
    for (name, s, _dir) in stores().await {
        with_user_and_client(s.as_ref()).await;
        let r = tessera_core::model::AuthorizationRequest {
            id: "r1".into(),
            client_id: "c1".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "crm".into(),
            state: Some("st".into()),
            code_challenge: "x".repeat(43),
            code_challenge_method: "plain".into(),
            dialect: "standard".into(),
            expires_at: 100,
            nonce: Some("n-0S6_WzA2Mj".into()),
            prompt: Some("login consent".into()),
            min_auth_time: Some(40),
            login_sid: None,
            subject: Some("u-hinted".into()),
        };
        s.insert_authorization_request(&r).await.unwrap();
        assert_eq!(
            s.authorization_request("r1", 99).await.unwrap(),
            Some(r.clone()),
            "{name}"
        );
        assert!(s.set_request_login("r1", "sid-9").await.unwrap(), "{name}");
        assert!(
            !s.set_request_login("gone", "sid-9").await.unwrap(),
            "{name}"
        );
        assert_eq!(
            s.authorization_request("r1", 99)
                .await
                .unwrap()
                .unwrap()
                .login_sid
                .as_deref(),
            Some("sid-9"),
            "{name}"
        );
        assert_eq!(s.authorization_request("r1", 100).await.unwrap(), None);
        let session = tessera_core::model::Session {
            digest: SecretDigest([5; 32]),
            user_id: "u1".into(),
            expires_at: 100,
            authenticated_at: 37,
        };
        assert!(
            s.insert_session(&session, &PasswordHash("h".into()))
                .await
                .unwrap()
        );
        assert_eq!(
            s.session(&SecretDigest([5; 32]), 99).await.unwrap(),
            Some(session)
        );
        assert_eq!(s.session(&SecretDigest([5; 32]), 100).await.unwrap(), None);
        s.delete_session(&SecretDigest([5; 32])).await.unwrap();
        assert_eq!(s.session(&SecretDigest([5; 32]), 0).await.unwrap(), None);
    }
}

#[tokio::test]
async fn concurrent_reservations_never_exceed_the_allowance() {
    use tessera_core::lockout::LockoutPolicy;
    let policy = LockoutPolicy {
        allowance: 5,
        decay_secs: 100,
        max_entries: 3,
    };
    for (name, s, _dir) in stores().await {
        let key = [7u8; 32];
        // 40 reservations of one key at once: exactly the allowance is granted.
        let granted = futures_count(&s, key, 1_000, &policy, 40).await;
        assert_eq!(granted, 5, "{name}");
        assert_eq!(
            s.reserve_attempt(&key, 1_000, &policy).await.unwrap(),
            Err(100),
            "{name}: one decay period to wait"
        );
        if s.shared() {
            // PostgreSQL counts in its own clock (below); the rest moves the node's.
            continue;
        }
        // One unit drains per decay period.
        assert_eq!(
            s.reserve_attempt(&key, 1_100, &policy).await.unwrap(),
            Ok(())
        );
        assert!(
            s.reserve_attempt(&key, 1_100, &policy)
                .await
                .unwrap()
                .is_err()
        );
        // A success empties the bucket.
        s.clear_attempts(&key).await.unwrap();
        assert_eq!(futures_count(&s, key, 1_100, &policy, 8).await, 5, "{name}");
        // Pruning drops drained buckets, then the oldest past max_entries.
        for i in 0..4u8 {
            s.reserve_attempt(&[i; 32], 2_000 + i64::from(i), &policy)
                .await
                .unwrap()
                .unwrap();
        }
        // At 1_601 key 7 (last touched at 1_100, 5 units) has drained; four buckets remain, one
        // over the cap: the oldest ([0; 32]) goes.
        assert_eq!(s.prune_attempts(1_601, &policy).await.unwrap(), 2, "{name}");
        assert_eq!(
            s.reserve_attempt(&[0; 32], 2_010, &policy).await.unwrap(),
            Ok(()),
            "{name}"
        );
    }
}

/// A shared database counts the lockout in its own clock: a node whose clock runs 600 s behind
/// (or ahead) neither drains nor stretches a bucket the other nodes fill. An attack with
/// `faketime` had every guess through by alternating a slow node and a good one.
#[tokio::test]
async fn a_shared_lockout_ignores_the_nodes_clocks() {
    use tessera_core::lockout::LockoutPolicy;
    let policy = LockoutPolicy {
        allowance: 5,
        decay_secs: 180,
        max_entries: 100,
    };
    for (name, s, _dir) in stores().await {
        if !s.shared() {
            continue;
        }
        let now = tessera_core::unix_now();
        let mut granted = 0;
        for i in 0..12 {
            let node_now = now + [0, -600, 600][i % 3];
            granted += usize::from(
                s.reserve_attempt(&[9; 32], node_now, &policy)
                    .await
                    .unwrap()
                    .is_ok(),
            );
        }
        assert_eq!(
            granted, 5,
            "{name}: the allowance, whatever the nodes' clocks say"
        );
        // A prune from a node far ahead deletes nothing that is not drained.
        assert_eq!(
            s.prune_attempts(now + 100_000, &policy).await.unwrap(),
            0,
            "{name}"
        );
        assert!(
            s.reserve_attempt(&[9; 32], now, &policy)
                .await
                .unwrap()
                .is_err(),
            "{name}"
        );
    }
}

/// Run `n` reservations of `key` at once; how many were granted.
async fn futures_count(
    s: &Arc<dyn Store>,
    key: [u8; 32],
    now: i64,
    policy: &tessera_core::lockout::LockoutPolicy,
    n: usize,
) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (s, policy) = (Arc::clone(s), *policy);
        tasks.spawn(async move { s.reserve_attempt(&key, now, &policy).await.unwrap() });
    }
    let mut granted = 0;
    while let Some(r) = tasks.join_next().await {
        granted += usize::from(r.unwrap().is_ok());
    }
    granted
}

fn successor(d: u8, grace: i64) -> Successor {
    Successor {
        digest: SecretDigest([d; 32]),
        expires_at: 2000,
        retry_grace: grace,
        family_lifetime: 1_000_000,
    }
}

/// The family's live heads: tokens neither rotated nor revoked.
async fn live_heads(s: &Arc<dyn Store>, digests: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut live = Vec::new();
    for d in digests {
        if let Some(t) = s.refresh_token(&SecretDigest([d; 32])).await.unwrap()
            && t.rotated_at.is_none()
            && t.revoked_at.is_none()
        {
            live.push(d);
        }
    }
    live
}

#[tokio::test]
async fn a_retry_after_a_lost_response_replaces_the_unused_successor() {
    let me = TokenOwner::Client("p1".into());
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let p = SecretDigest([1; 32]);
        assert!(matches!(
            s.rotate_refresh_token(&p, &me, &successor(2, 30), 200)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        // The response carrying 2 was lost; the client retries 1 within the grace period.
        match s
            .rotate_refresh_token(&p, &me, &successor(3, 30), 210)
            .await
            .unwrap()
        {
            Rotation::Replaced(r) => assert_eq!(r.family_id, "f1", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            live_heads(&s, [1, 2, 3]).await,
            [3],
            "{name}: one live head"
        );
        // Another client's retry replaces nothing.
        assert_eq!(
            s.rotate_refresh_token(&p, &TokenOwner::Client("x".into()), &successor(9, 30), 211)
                .await
                .unwrap(),
            Rotation::WrongClient
        );
        // Once the successor is used, a retry of 1 is reuse: refused, nothing written.
        assert!(matches!(
            s.rotate_refresh_token(&SecretDigest([3; 32]), &me, &successor(4, 30), 220)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        assert!(matches!(
            s.rotate_refresh_token(&p, &me, &successor(5, 30), 225)
                .await
                .unwrap(),
            Rotation::NotActive(_)
        ));
        assert_eq!(live_heads(&s, [1, 2, 3, 4, 5]).await, [4], "{name}");
        // Past the grace period a retry is not one.
        s.insert_refresh_token(&refresh(10, "f2", 1000))
            .await
            .unwrap();
        let q = SecretDigest([10; 32]);
        s.rotate_refresh_token(&q, &me, &successor(11, 30), 200)
            .await
            .unwrap();
        assert!(matches!(
            s.rotate_refresh_token(&q, &me, &successor(12, 30), 231)
                .await
                .unwrap(),
            Rotation::NotActive(_)
        ));
        assert_eq!(live_heads(&s, [10, 11, 12]).await, [11], "{name}");
    }
}

#[tokio::test]
async fn concurrent_retries_leave_exactly_one_live_head() {
    let me = TokenOwner::Client("p1".into());
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        s.rotate_refresh_token(&SecretDigest([1; 32]), &me, &successor(2, 30), 200)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let (s, me) = (Arc::clone(&s), me.clone());
            tasks.push(tokio::spawn(async move {
                s.rotate_refresh_token(&SecretDigest([1; 32]), &me, &successor(100 + i, 30), 205)
                    .await
                    .unwrap()
            }));
        }
        let mut replaced = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Rotation::Replaced(_)) {
                replaced += 1;
            }
        }
        assert!(replaced >= 1, "{name}: a retry replaces the lost successor");
        let heads = live_heads(&s, [1, 2].into_iter().chain(100..120)).await;
        assert_eq!(heads.len(), 1, "{name}: {heads:?}");
    }
}

#[tokio::test]
async fn a_family_ends_at_its_lifetime() {
    let me = TokenOwner::Client("p1".into());
    for (name, s, _dir) in stores().await {
        // refresh() families begin at 100; a 500-second lifetime ends them at 600.
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let short = Successor {
            family_lifetime: 500,
            ..successor(2, 30)
        };
        assert!(matches!(
            s.rotate_refresh_token(&SecretDigest([1; 32]), &me, &short, 200)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        let next = s
            .refresh_token(&SecretDigest([2; 32]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.expires_at, 600, "{name}: clamped to the family's end");
        let later = Successor {
            family_lifetime: 500,
            ..successor(3, 30)
        };
        assert!(matches!(
            s.rotate_refresh_token(&SecretDigest([2; 32]), &me, &later, 600)
                .await
                .unwrap(),
            Rotation::NotActive(_)
        ));
    }
}

#[tokio::test]
async fn concurrent_first_uses_within_the_grace_period_neither_deadlock_nor_fork() {
    let me = TokenOwner::Client("p1".into());
    for (name, s, _dir) in stores().await {
        s.insert_refresh_token(&refresh(1, "f1", 1000))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..40u8 {
            let (s, me) = (Arc::clone(&s), me.clone());
            tasks.push(tokio::spawn(async move {
                s.rotate_refresh_token(&SecretDigest([1; 32]), &me, &successor(100 + i, 30), 200)
                    .await
            }));
        }
        let mut rotated = 0;
        for t in tasks {
            // A deadlock or serialization failure would surface here as an error.
            match t.await.unwrap() {
                Ok(Rotation::Rotated(_)) => rotated += 1,
                Ok(_) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(rotated, 1, "{name}");
        let heads = live_heads(&s, [1].into_iter().chain(100..140)).await;
        assert_eq!(heads.len(), 1, "{name}: {heads:?}");
    }
}

#[tokio::test]
async fn the_janitor_deletes_only_what_can_never_be_used_again() {
    let me = TokenOwner::Client("p1".into());
    for (name, s, _dir) in stores().await {
        with_user_and_client(s.as_ref()).await;
        // Refresh tokens (refresh() families begin at 100): f-dead's expired at 300; f-live's
        // lives to 5000; f-rotated's parent (rotated, unexpired: evidence of reuse) stays while
        // its expired head goes; f-recent's was revoked within the grace period.
        s.insert_refresh_token(&refresh(1, "f-dead", 300))
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(2, "f-live", 5000))
            .await
            .unwrap();
        s.insert_refresh_token(&refresh(3, "f-rotated", 5000))
            .await
            .unwrap();
        s.rotate_refresh_token(
            &SecretDigest([3; 32]),
            &me,
            &Successor {
                expires_at: 400,
                ..successor(4, 30)
            },
            200,
        )
        .await
        .unwrap();
        s.insert_refresh_token(&refresh(5, "f-recent", 5000))
            .await
            .unwrap();
        s.revoke_family("f-recent", 9000, 990).await.unwrap();
        let now = 1000;
        let mut deleted = 0;
        loop {
            let n = s.purge(Purge::RefreshTokens, now, 30, 1).await.unwrap();
            if n == 0 {
                break;
            }
            deleted += n;
        }
        assert_eq!(
            deleted, 2,
            "{name}: f-dead's token and f-rotated's expired head"
        );
        for (d, kept) in [(1, false), (2, true), (3, true), (4, false), (5, true)] {
            assert_eq!(
                s.refresh_token(&SecretDigest([d; 32]))
                    .await
                    .unwrap()
                    .is_some(),
                kept,
                "{name}: token {d}"
            );
        }
        // Sessions, pending requests and revocations go at their expiry.
        for (digest, expires_at) in [(11u8, 900), (12, 2000)] {
            s.insert_session(
                &tessera_core::model::Session {
                    digest: SecretDigest([digest; 32]),
                    user_id: "u1".into(),
                    expires_at,
                    authenticated_at: 0,
                },
                &PasswordHash("h".into()),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            s.purge(Purge::Sessions, now, 30, 100).await.unwrap(),
            1,
            "{name}"
        );
        assert!(
            s.session(&SecretDigest([12; 32]), now)
                .await
                .unwrap()
                .is_some()
        );
        s.revoke_jti("old", 900).await.unwrap();
        s.revoke_jti("new", 2000).await.unwrap();
        assert_eq!(
            s.purge(Purge::Revocations, now, 30, 100).await.unwrap(),
            1,
            "{name}"
        );
        let active: Vec<String> = s
            .active_revocations(0)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(active.contains(&"new".to_string()) && !active.contains(&"old".to_string()));
        // Codes stay an access token's lifetime past their expiry (500 here).
        s.insert_authorization_code(&code(21, "g")).await.unwrap();
        assert_eq!(
            s.purge(Purge::Codes, 1000, 30, 100).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(
            s.purge(Purge::Codes, 500 + 86_400 + 1, 30, 100)
                .await
                .unwrap(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn inventory_lists_page_by_id_and_filter() {
    use tessera_core::store::{GrantsOf, UserFilter};
    for (name, s, _dir) in stores().await {
        with_user_and_client(s.as_ref()).await;
        s.insert_partner(&partner("p2", "b@x.example", "ORG2"), &[])
            .await
            .unwrap();
        s.insert_partner(&partner("p3", "c@x.example", "ORG3"), &[])
            .await
            .unwrap();
        // Partners: pages of two, in id order, the second after the first's last id.
        let first = s.list_partners(None, 2).await.unwrap();
        let ids: Vec<_> = first.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"], "{name}");
        let rest = s.list_partners(Some("p2"), 2).await.unwrap();
        assert_eq!(rest.len(), 1, "{name}");
        assert_eq!(rest[0].id, "p3");

        // Clients of one partner, or of all.
        assert_eq!(s.list_clients(Some("p1"), None, 10).await.unwrap().len(), 1);
        assert!(
            s.list_clients(Some("p2"), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.list_clients(None, None, 10).await.unwrap().len(), 1);

        // Users: every filter given must match.
        s.insert_user(
            &User {
                id: "u2".into(),
                partner_id: "p2".into(),
                account_id: None,
                username: "ann@x.example".into(),
                role: Role::Admin,
                password_hash: PasswordHash("h".into()),
                first_name: None,
                last_name: None,
                external_id: None,
                signed_up_by: None,
                created_at: 1,
            },
            &[],
        )
        .await
        .unwrap();
        let users = |f: UserFilter| {
            let s = Arc::clone(&s);
            async move {
                s.list_users(&f, None, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|u| u.id)
                    .collect::<Vec<_>>()
            }
        };
        let by_name = UserFilter {
            username: Some("ann@x.example".into()),
            ..UserFilter::default()
        };
        assert_eq!(users(by_name.clone()).await, ["u1", "u2"], "{name}");
        assert_eq!(
            users(UserFilter {
                role: Some(Role::Admin),
                ..by_name.clone()
            })
            .await,
            ["u2"],
            "{name}"
        );
        assert_eq!(
            users(UserFilter {
                partner_id: Some("p1".into()),
                ..by_name
            })
            .await,
            ["u1"],
            "{name}"
        );
        assert!(
            users(UserFilter {
                account_id: Some("a1".into()),
                ..UserFilter::default()
            })
            .await
            .is_empty()
        );

        // Grants of a user or a client, withdrawn ones included.
        let g = s.upsert_grant("u1", "c1", "crm", 10).await.unwrap();
        s.revoke_grant("u1", "c1", 100, 20, &[]).await.unwrap();
        let of_client = s
            .list_grants_of(&GrantsOf::Client("c1".into()), None, 10)
            .await
            .unwrap();
        assert_eq!(of_client.len(), 1, "{name}");
        assert_eq!(
            (of_client[0].id.as_str(), of_client[0].revoked_at),
            (g.id.as_str(), Some(20))
        );
        let of_user = s
            .list_grants_of(&GrantsOf::User("u1".into()), None, 10)
            .await
            .unwrap();
        assert_eq!(of_user.len(), 1, "{name}");
        assert!(
            s.list_grants_of(&GrantsOf::User("u2".into()), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn audit_events_append_in_order_filter_and_expire() {
    use tessera_core::audit::{AuditEvent, AuditQuery, Event};
    for (name, s, _dir) in stores().await {
        let partner_of = |i: i64| if i < 600 { "p1" } else { "p2" };
        let events: Vec<AuditEvent> = (0..1200)
            .filter(|i| i % 2 == 1)
            .map(|i| {
                let e = AuditEvent::new(Event::UserSignInFailed, 1_000 + i)
                    .partner(partner_of(i))
                    .username(&format!("u{}", i % 3))
                    .detail("n", i);
                AuditEvent {
                    ip: Some("192.0.2.1".into()),
                    ..e
                }
            })
            .collect();
        let tokens: Vec<_> = (0..1200)
            .filter(|i| i % 2 == 0)
            .map(|i| issued(1_000 + i, partner_of(i), &i.to_string()))
            .collect();
        // More than one insert statement's worth, in one call.
        s.append_audit(&events, &tokens).await.unwrap();
        let all = s
            .query_audit(&AuditQuery {
                limit: 5000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1200, "{name}");
        assert!(
            all.windows(2).all(|w| w[0].id > w[1].id),
            "{name}: newest first"
        );
        // Each kind keeps the order of the batch: rows among rows, and token events (stored
        // in compact batches) among themselves.
        for kind in ["token.issued", "user.sign_in_failed"] {
            let n: Vec<i64> = all
                .iter()
                .filter(|e| e.event == kind)
                .map(|e| match e.detail.get("n") {
                    None => e.detail["jti"].as_str().unwrap().parse().unwrap(),
                    Some(n) => n.as_i64().unwrap(),
                })
                .collect();
            assert_eq!(n.len(), 600, "{name}");
            assert!(n.windows(2).all(|w| w[0] > w[1]), "{name}: {kind} in order");
        }
        assert_eq!(all[0].ip.as_deref(), Some("192.0.2.1"));
        // A short batch after a long one (another statement shape), with absent fields.
        let bare: Vec<AuditEvent> = (0..3)
            .map(|i| AuditEvent::new(Event::Lockout, 900).detail("bare", i))
            .collect();
        s.append_audit(&bare, &[]).await.unwrap();
        let newest = s
            .query_audit(&AuditQuery {
                limit: 4,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(newest[0].detail["bare"], 2, "{name}");
        assert_eq!(newest[2].detail["bare"], 0, "{name}");
        assert_eq!(
            newest[3].detail["jti"], "1198",
            "{name}: a call's token events are numbered after its rows"
        );
        assert_eq!(
            (newest[0].partner_id.as_deref(), newest[0].ip.as_deref()),
            (None, None)
        );
        let some = s
            .query_audit(&AuditQuery {
                since: Some(1_100),
                until: Some(1_700),
                partner_id: Some("p2".into()),
                event: Some("token.issued".into()),
                limit: 5000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        // at in [1600, 1700), i in [600, 700), even.
        assert_eq!(
            some.len(),
            (600..700).filter(|i| i % 2 == 0).count(),
            "{name}"
        );
        assert!(some.iter().all(|e| e.at >= 1_600 && e.at < 1_700));
        // The janitor deletes events older than the retention, a bounded number at a time:
        // rows one by one, and a compact batch of token events (with the marker row that
        // holds its ids) once its newest event is past the retention.
        let purge_all = async |now| {
            let mut deleted = 0;
            loop {
                let n = s.purge(Purge::AuditEvents, now, 500, 100).await.unwrap();
                deleted += n;
                if n < 100 {
                    return deleted;
                }
            }
        };
        let listed = async || {
            s.query_audit(&AuditQuery {
                limit: 5000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
        };
        // Rows at < 1500: 250 sign-in failures and the 3 bare events; the tokens' batch runs
        // to at 2199 and stays whole.
        assert_eq!(purge_all(2_000).await, 253, "{name}");
        let left = listed().await;
        assert_eq!(left.len(), 950, "{name}");
        assert!(
            left.iter()
                .all(|e| e.event == "token.issued" || e.at >= 1_500),
            "{name}"
        );
        // Past 2199: the other 350 rows, and the batch (counted once).
        assert_eq!(purge_all(3_000).await, 351, "{name}");
        assert!(listed().await.is_empty(), "{name}");
    }
}

/// Token events are stored in compact batches, other events as rows: a listing merges them
/// newest first, and paging with `before` walks every event once, filtered or not.
#[tokio::test]
async fn audit_pages_merge_token_batches_and_rows() {
    use tessera_core::audit::{AuditEvent, AuditQuery, Event};
    for (name, s, _dir, url) in stores_at().await {
        let mut n = 0;
        // 20 flushes (more batches than one read of them), each with tokens of two partners
        // and a sign-in failure between them.
        for flush in 0..20 {
            let mut rows = Vec::new();
            let mut tokens = Vec::new();
            for k in 0..9 {
                n += 1;
                let at = 10_000 + flush * 10 + k;
                if k == 4 {
                    rows.push(AuditEvent::new(Event::UserSignInFailed, at).username("u"));
                } else {
                    let partner = if k % 2 == 0 { "p1" } else { "p2" };
                    tokens.push(issued(at, partner, &format!("j{n}")));
                }
            }
            s.append_audit(&rows, &tokens).await.unwrap();
        }
        let page_through = async |q: AuditQuery| {
            let mut seen: Vec<AuditEvent> = Vec::new();
            loop {
                let page = s
                    .query_audit(&AuditQuery {
                        before: seen.last().map(|e| e.id),
                        limit: 7,
                        ..q.clone()
                    })
                    .await
                    .unwrap();
                if page.is_empty() {
                    return seen;
                }
                seen.extend(page);
            }
        };
        let all = page_through(AuditQuery::default()).await;
        assert_eq!(all.len(), 180, "{name}: every event once");
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "{name}");
        let whole = s
            .query_audit(&AuditQuery {
                limit: 5000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(whole, all, "{name}: pages add up to the whole listing");
        assert!(
            all.iter().all(|e| e.event != "token.issued.batch"),
            "{name}"
        );
        let p2 = page_through(AuditQuery {
            partner_id: Some("p2".into()),
            since: Some(10_050),
            until: Some(10_150),
            ..AuditQuery::default()
        })
        .await;
        // Flushes 5..15, four p2 tokens each.
        assert_eq!(p2.len(), 40, "{name}");
        assert!(p2.iter().all(|e| e.partner_id.as_deref() == Some("p2")
            && e.event == "token.issued"
            && (10_050..10_150).contains(&e.at)));
        let failures = page_through(AuditQuery {
            event: Some("user.sign_in_failed".into()),
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(failures.len(), 20, "{name}");
        let first = all
            .iter()
            .find(|e| e.detail.get("jti").is_some_and(|j| j == "j1"))
            .unwrap();
        assert_eq!(
            (
                first.at,
                first.partner_id.as_deref(),
                first.client_id.as_deref()
            ),
            (10_000, Some("p1"), Some("p1")),
            "{name}: a token event comes back"
        );
        assert_eq!(
            first.detail,
            issued(10_000, "p1", "j1").to_event().detail,
            "{name}"
        );
        // Two filters at once: a batch must name both.
        assert!(
            page_through(AuditQuery {
                partner_id: Some("p1".into()),
                client_id: Some("nobody".into()),
                ..AuditQuery::default()
            })
            .await
            .is_empty(),
            "{name}"
        );

        // A row dated later than the next batch but numbered before it.
        s.append_audit(&[AuditEvent::new(Event::Lockout, 30_000)], &[])
            .await
            .unwrap();
        // Events of one flush out of time order: the batch spans the earliest to the latest,
        // and a time filter finds the early one.
        let late_then_early = [issued(20_001, "p1", "late"), issued(20_000, "p1", "early")];
        s.append_audit(&[], &late_then_early).await.unwrap();
        let early = s
            .query_audit(&AuditQuery {
                since: Some(20_000),
                until: Some(20_001),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(early.len(), 1, "{name}");
        assert_eq!(early[0].detail["jti"], "early", "{name}");

        // A janitor that knows no batches (release 0.1.0 deletes by time alone) takes a marker
        // only with its whole batch: ids appended afterwards are still new (a marker dated by
        // the batch's earliest event went first, and the next row took the batch's first id).
        run_sql(name, &url, &["DELETE FROM audit_events WHERE at < 20001"]).await;
        s.append_audit(&[AuditEvent::new(Event::Lockout, 20_002)], &[])
            .await
            .unwrap();
        s.append_audit(&[], &[issued(20_003, "p1", "last")])
            .await
            .unwrap();
        let ids: Vec<i64> = page_through(AuditQuery::default())
            .await
            .iter()
            .map(|e| e.id)
            .collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique, "{name}: no id twice");
    }
}

#[tokio::test]
async fn one_key_is_scheduled_at_a_time_and_revocation_is_fed() {
    for (name, s, _dir) in stores().await {
        let m = MasterKey::generate();
        let first = generate_key(Alg::ES256, &m, 100).unwrap();
        s.rotate_keys(&first, 100, &[]).await.unwrap();
        let mut next = generate_key(Alg::ES256, &m, 200).unwrap();
        next.activates_at = Some(1_000);
        let mut another = generate_key(Alg::ES256, &m, 300).unwrap();
        another.activates_at = Some(2_000);
        // Concurrent schedulers: exactly one adds its key.
        let (a, b) = tokio::join!(s.schedule_key(&next, 200), s.schedule_key(&another, 200));
        assert!(a.unwrap() ^ b.unwrap(), "{name}");
        let keys = s.list_keys().await.unwrap();
        assert_eq!(keys.len(), 2, "{name}");
        let pending = keys.iter().find(|k| k.kid != first.kid).unwrap();
        assert_eq!(pending.state(&keys, 200), KeyState::Pending);
        // Once it activates, another may be scheduled.
        let mut third = generate_key(Alg::ES256, &m, 2_500).unwrap();
        third.activates_at = Some(9_000);
        assert!(s.schedule_key(&third, 2_500).await.unwrap(), "{name}");
        let before = s.latest_change().await.unwrap();
        s.revoke_key(&third.kid, None, 2_600, &[]).await.unwrap();
        assert!(matches!(
            s.revoke_key(&third.kid, None, 2_700, &[]).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(
            s.changes_since(before, 10).await.unwrap()[0].1,
            Change::Keys,
            "{name}"
        );
        let keys = s.list_keys().await.unwrap();
        let t = keys.iter().find(|k| k.kid == third.kid).unwrap();
        assert_eq!(t.revoked_at, Some(2_600));
        assert_eq!(t.state(&keys, 2_600), KeyState::Revoked);
    }
}

#[tokio::test]
async fn admin_tokens_and_idempotency_keys() {
    use tessera_core::audit::{AuditEvent, Event};
    use tessera_core::model::{AdminScope, AdminToken};
    for (name, s, _dir, url) in stores_at().await {
        let t = AdminToken {
            id: "at1".into(),
            name: "back office".into(),
            digest: SecretDigest([3; 32]),
            scopes: vec![AdminScope::Read, AdminScope::Write],
            created_at: 10,
            revoked_at: None,
        };
        s.insert_admin_token(&t, &[]).await.unwrap();
        assert_eq!(
            s.admin_token(&SecretDigest([3; 32])).await.unwrap(),
            Some(t.clone()),
            "{name}"
        );
        assert_eq!(s.admin_token(&SecretDigest([4; 32])).await.unwrap(), None);
        assert_eq!(s.list_admin_tokens().await.unwrap(), vec![t.clone()]);
        assert!(
            s.revoke_admin_token("at1", 20, &[]).await.unwrap(),
            "{name}"
        );
        assert!(
            !s.revoke_admin_token("at1", 30, &[]).await.unwrap(),
            "{name}: once"
        );
        assert_eq!(
            s.admin_token(&SecretDigest([3; 32]))
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(20)
        );

        // 20 reservations of one key at once: exactly one caller runs the request.
        let fp = SecretDigest([9; 32]);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (s, fp) = (Arc::clone(&s), fp);
                tokio::spawn(async move {
                    s.reserve_idempotency_key("at1", "k", None, &fp, 100, 0)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut free = 0;
        for task in tasks {
            match task.await.unwrap() {
                None => free += 1,
                Some(held) => assert_eq!((held.fingerprint, held.answer), (fp, None), "{name}"),
            }
        }
        assert_eq!(free, 1, "{name}");
        s.finish_idempotency_key("at1", "k", b"sealed")
            .await
            .unwrap();
        let held = s
            .reserve_idempotency_key("at1", "k", None, &fp, 101, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.answer.as_deref(), Some(&b"sealed"[..]), "{name}");
        // An answer release 0.1.0 kept (its status in a column of its own) is not replayed:
        // its key reads as carried out, without an answer.
        assert!(
            s.reserve_idempotency_key("at1", "legacy", None, &fp, 101, 0)
                .await
                .unwrap()
                .is_none()
        );
        s.finish_idempotency_key("at1", "legacy", b"0.1.0 body")
            .await
            .unwrap();
        run_sql(
            name,
            &url,
            &["UPDATE idempotency_keys SET status = 201 WHERE key = 'legacy'"],
        )
        .await;
        let legacy = s
            .reserve_idempotency_key("at1", "legacy", None, &fp, 101, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((legacy.carried_out, legacy.answer), (true, None), "{name}");
        assert!(!s.release_idempotency_key("at1", "legacy").await.unwrap());
        // A finished key is not released; an unfinished one is, and is free again.
        assert!(!s.release_idempotency_key("at1", "k").await.unwrap());
        assert!(
            s.reserve_idempotency_key("at1", "k", None, &fp, 102, 0)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.reserve_idempotency_key("at1", "k2", None, &fp, 102, 0)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.release_idempotency_key("at1", "k2").await.unwrap());
        assert!(
            s.reserve_idempotency_key("at1", "k2", None, &fp, 103, 0)
                .await
                .unwrap()
                .is_none()
        );
        // A change of the request that reserved a key marks it in the change's transaction:
        // the key is then never freed, and shows as carried out. An event of another kind, or
        // of another request, marks nothing.
        let change = |request: &str, event| AuditEvent {
            request_id: Some(request.into()),
            ..AuditEvent::new(event, 105)
        };
        for key in ["k3", "k4"] {
            let request = format!("req-{key}");
            assert!(
                s.reserve_idempotency_key("at1", key, Some(&request), &fp, 105, 0)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let issued = change("req-k4", Event::TokenIssued);
        let other = change("req-other", Event::AdminChange);
        s.add_scopes(
            &["marked".into()],
            None,
            &[change("req-k3", Event::AdminChange)],
        )
        .await
        .unwrap();
        s.add_scopes(&["unmarked".into()], None, &[issued, other])
            .await
            .unwrap();
        assert!(
            !s.release_idempotency_key("at1", "k3").await.unwrap(),
            "{name}: a carried-out key is kept"
        );
        let held = s
            .reserve_idempotency_key("at1", "k3", Some("req-again"), &fp, 106, 0)
            .await
            .unwrap()
            .unwrap();
        assert!(held.carried_out, "{name}");
        assert!(
            s.release_idempotency_key("at1", "k4").await.unwrap(),
            "{name}: nothing marked k4"
        );
        // Keys are per token, and forgotten once older than the window.
        assert!(
            s.reserve_idempotency_key("at2", "k", None, &fp, 104, 0)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.reserve_idempotency_key("at1", "k", None, &fp, 200_000, 200_000 - 86_400)
                .await
                .unwrap()
                .is_none(),
            "{name}: a day later the key is new"
        );
    }
}

/// Rolling upgrades (`tessera_store::release`): opening a database records this release;
/// a database that the next release migrated opens (a rollout in progress); one that a release
/// two steps newer migrated is refused, untouched.
#[tokio::test]
async fn a_database_two_releases_ahead_is_refused() {
    use sqlx::Connection;
    use tessera_store::release::RELEASE;
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("r.db").display())];
    if let Some(admin) = postgres_url() {
        urls.push(
            tessera_store::create_scratch_database(&admin)
                .await
                .unwrap(),
        );
    }
    let options = tessera_store::Options::default();
    for url in urls {
        tessera_store::open(&url, &options).await.unwrap();
        let record = |release: i64| {
            let url = url.clone();
            async move {
                if url.starts_with("sqlite:") {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query("INSERT INTO schema_release (release) VALUES (?)")
                        .bind(release)
                        .execute(&mut c)
                        .await
                        .unwrap();
                } else {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query("INSERT INTO schema_release (release) VALUES ($1)")
                        .bind(release)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
            }
        };
        let newest = || {
            let url = url.clone();
            async move {
                let sql = "SELECT max(release) FROM schema_release";
                if url.starts_with("sqlite:") {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap()
                } else {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap()
                }
            }
        };
        assert_eq!(newest().await, RELEASE, "{url}");
        record(RELEASE + 1).await;
        tessera_store::open(&url, &options).await.unwrap();
        assert_eq!(newest().await, RELEASE + 1, "an older node records nothing");
        record(RELEASE + 2).await;
        let refused = match tessera_store::open(&url, &options).await {
            Ok(_) => panic!("{url}: opened a database two releases ahead"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("more than one release newer"), "{refused}");
    }
}

/// One write path: an administrative write and its audit events commit in one transaction.
/// With the audit trail refusing appends, the write fails and changes nothing (a partner is not
/// created, a status not set); once it accepts them again, the same writes succeed with their
/// events, and writes that carry no event were never affected.
#[tokio::test]
async fn an_admin_write_and_its_audit_events_commit_together() {
    use tessera_core::audit::{AuditEvent, AuditQuery, Event};
    for (name, s, _dir, url) in stores_at().await {
        s.insert_partner(&partner("p1", "a@x.example", "ORG1"), &[])
            .await
            .unwrap();
        let event = |change: &str| {
            AuditEvent::new(Event::AdminChange, 10)
                .detail("change", change)
                .partner("p1")
        };
        refuse_audit(name, &url, true).await;
        let p2 = partner("p2", "b@x.example", "ORG2");
        assert!(
            s.insert_partner(&p2, &[event("partner.create")])
                .await
                .is_err()
        );
        assert!(
            s.partner_by_id("p2").await.unwrap().is_none(),
            "{name}: made, not recorded"
        );
        let inactive = PartnerStatus::Inactive;
        let set = [event("partner.set_status")];
        assert!(
            s.set_partner_status("p1", inactive, &set).await.is_err(),
            "{name}"
        );
        let p1 = s.partner_by_id("p1").await.unwrap().unwrap();
        assert_eq!(
            p1.status,
            PartnerStatus::Active,
            "{name}: changed, not recorded"
        );
        // A write no operator made carries no event, and goes through.
        s.set_partner_status("p1", inactive, &[]).await.unwrap();
        s.set_partner_status("p1", PartnerStatus::Active, &[])
            .await
            .unwrap();

        refuse_audit(name, &url, false).await;
        s.insert_partner(&p2, &[event("partner.create")])
            .await
            .unwrap();
        s.set_partner_status("p1", inactive, &[event("partner.set_status")])
            .await
            .unwrap();
        let recorded = s
            .query_audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let changes: Vec<_> = recorded
            .iter()
            .map(|e| e.detail["change"].clone())
            .collect();
        assert_eq!(changes, ["partner.set_status", "partner.create"], "{name}");
    }
}

/// Revoking the active key replaces it in the same transaction: the lane keeps an active key,
/// and of two revocations racing for one key exactly one succeeds, so exactly one replacement
/// exists (they used to rotate, then revoke, in two transactions: both rotated).
#[tokio::test]
async fn revoking_the_active_key_replaces_it_once_even_under_a_race() {
    for (name, s, _dir) in stores().await {
        let m = MasterKey::generate();
        let first = generate_key(Alg::ES256, &m, 10).unwrap();
        s.rotate_keys(&first, 10, &[]).await.unwrap();
        let a = generate_key(Alg::ES256, &m, 20).unwrap();
        let b = generate_key(Alg::ES256, &m, 20).unwrap();
        let (ra, rb) = tokio::join!(
            s.revoke_key(&first.kid, Some(&a), 20, &[]),
            s.revoke_key(&first.kid, Some(&b), 20, &[])
        );
        assert_eq!(
            [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{name}: {ra:?} {rb:?}"
        );
        let keys = s.list_keys().await.unwrap();
        assert_eq!(keys.len(), 2, "{name}: one replacement");
        let active: Vec<_> = keys
            .iter()
            .filter(|k| k.state(&keys, 30) == KeyState::Active)
            .collect();
        assert_eq!(active.len(), 1, "{name}");
        assert!(active[0].kid == a.kid || active[0].kid == b.kid, "{name}");
        let revoked = keys.iter().find(|k| k.kid == first.kid).unwrap();
        assert_eq!(revoked.revoked_at, Some(20), "{name}");
    }
}
