//! A rolling upgrade (issue 19, item 5): a node of the previous release (0.1.0, tag `v0.1.0`)
//! and a node of this one share a PostgreSQL database, as they do while a fleet is replaced.
//! The previous release creates the database; this one migrates it (expand only:
//! `tessera_store::release`) while the old node keeps serving; then seed 000's and seed 002's
//! requests, and refreshes, go back and forth between the two, an admin `Idempotency-Key`
//! answered by either is never run again by the other, and the old node restarts on the
//! migrated database.
//!
//! The previous release's binary is built from a git worktree of its tag by
//! `scripts/build-previous-release` (a few minutes), which `.ci/run` runs before the suite and
//! names in `TESSERA_TEST_PREVIOUS_BINARY`. Without that variable, or without PostgreSQL, the
//! test says "skipped".

use std::path::Path;
use std::process::Command;

use crate::support::Spawned;

use serde_json::{Value, json};

const KEY: &str = "7777777777777777777777777777777777777777777777777777777777777777";
const ISSUER: &str = "http://auth.upgrade.example";

fn cli(binary: &Path, db: &str, args: &[&str], stdin: &str) -> Value {
    crate::support::cli_json(binary, db, args, stdin, KEY)
}

fn node(binary: &Path, db: &str) -> (Spawned, String) {
    let (child, addr) = crate::support::spawn_binary(
        binary,
        "127.0.0.1:0",
        &["--database", db, "--issuer", ISSUER],
        KEY,
    );
    (Spawned(child), format!("http://{addr}"))
}

struct Partner {
    basic: String,
}

impl Partner {
    async fn json(&self, base: &str, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .header("Authorization", &self.basic)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{base}{path}: {status} {body}");
        body
    }
}

async fn form(base: &str, basic: &str, pairs: &[(&str, &str)]) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .header("Authorization", basic)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{base}/oauth/token: {status} {body}");
    body
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{user}:{password}")
        )
    )
}

fn stop(node: Spawned) {
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_and_this_one_share_a_database() {
    let Some(admin) = crate::support::postgres_url("upgrade") else {
        return;
    };
    // scripts/test builds the previous release when the clone holds its commit (a shallow
    // clone does not: then this test says so and is skipped, and scripts/test printed why).
    let previous = match std::env::var("TESSERA_TEST_PREVIOUS_BINARY") {
        Ok(p) if !p.trim().is_empty() && p.trim() != "skip" => p.trim().to_string(),
        _ => {
            eprintln!("skipped upgrade: TESSERA_TEST_PREVIOUS_BINARY is not set");
            return;
        }
    };
    let old = Path::new(&previous);
    let new = Path::new(env!("CARGO_BIN_EXE_tessera"));
    let version = Command::new(old).arg("--version").output().unwrap();
    eprintln!(
        "previous release: {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let db = tessera_store::create_scratch_database(&admin)
        .await
        .unwrap();

    // The previous release makes the database, its data, and serves.
    cli(old, &db, &["scope", "add", "transport", "crm", "WRITE"], "");
    let partner = cli(
        old,
        &db,
        &[
            "partner",
            "create",
            "--name",
            "Upgrade",
            "--email",
            "ops@upgrade.example",
            "--password-stdin",
            "--scopes",
            "transport,crm,WRITE",
        ],
        "harbor-violet-engine-43\n",
    );
    let partner_id = partner["partner_id"].as_str().unwrap().to_string();
    let (old_node, old_base) = node(old, &db);
    let p = Partner {
        basic: basic("ops@upgrade.example", "harbor-violet-engine-43"),
    };
    let account = p
        .json(
            &old_base,
            "/v2/accounts",
            json!({"name": "Acme", "external_id": "acme-1"}),
        )
        .await["data"]["account_id"]
        .as_str()
        .unwrap()
        .to_string();

    // This release starts on the same database (and migrates it) while the old node serves.
    let (new_node, new_base) = node(new, &db);
    let machine = |base: String| {
        let p = &p;
        async move {
            p.json(
                &base,
                "/v2/oauth/token",
                json!({"grant_type": "client_credentials", "client_credentials_data": {"scope": "transport,crm"}}),
            )
            .await["data"]["access_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let exchange = |base: String, mt: String| {
        let (p, account) = (&p, &account);
        async move {
            p.json(
                &base,
                "/v2/oauth/token",
                json!({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                       "token_exchange_data": {"subject_token": mt,
                         "subject_token_type": "urn:wazzup:oauth:token-type:machine_token",
                         "requested_subject": account, "scope": "transport,crm"}}),
            )
            .await["data"]["refresh_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let refresh = |base: String, rt: String| {
        let p = &p;
        async move {
            p.json(
                &base,
                "/v2/oauth/token",
                json!({"grant_type": "refresh_token", "refresh_token_data": {"refresh_token": rt}}),
            )
            .await["data"]["refresh_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // Seed 000 back and forth: a token made on one release is taken by the other.
    let mt = machine(new_base.clone()).await;
    let rt = exchange(old_base.clone(), mt).await;
    let rt = refresh(new_base.clone(), rt).await;
    let rt = refresh(old_base.clone(), rt).await;
    let mt = machine(old_base.clone()).await;
    let rt2 = exchange(new_base.clone(), mt).await;
    let rt2 = refresh(old_base.clone(), rt2).await;

    // Seed 002: a client and an organisation admin made by this release's CLI on the migrated
    // database; the app token from one node, user tokens from both, a buyer signed up.
    let client = cli(
        new,
        &db,
        &[
            "client",
            "create",
            "--partner",
            &partner_id,
            "--name",
            "Org app",
            "--grant-types",
            "client_credentials,password,refresh_token",
            "--scopes",
            "WRITE",
        ],
        "",
    );
    let client_basic = basic(
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    cli(
        new,
        &db,
        &[
            "user",
            "create",
            "--partner",
            &partner_id,
            "--username",
            "owner@upgrade.example",
            "--password-stdin",
            "--role",
            "admin",
        ],
        "canyon-amber-lantern-18\n",
    );
    // Other nodes see new clients within a second (the change feed).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let app = form(
        &old_base,
        &client_basic,
        &[("grant_type", "client_credentials"), ("scope", "WRITE")],
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The user token (seed 002 gives it no refresh token) from each node.
    for base in [&new_base, &old_base] {
        let user = form(
            base,
            &client_basic,
            &[
                ("grant_type", "password"),
                ("username", "owner@upgrade.example"),
                ("password", "canyon-amber-lantern-18"),
                ("scope", "WRITE"),
            ],
        )
        .await;
        assert!(user["access_token"].is_string(), "{user}");
    }
    let signup = reqwest::Client::new()
        .post(format!("{new_base}/v2/api/users/sign-up"))
        .header("Authorization", format!("Bearer {app}"))
        .header("Content-Type", "application/json")
        .body(
            json!({"phoneNumber": "+966501234567", "firstName": "Sara", "lastName": "Ali",
                   "clientUserId": "buyer-77"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        signup.status().is_success(),
        "{}",
        signup.text().await.unwrap()
    );

    // An Idempotency-Key answered by one release is never run again by the other. This
    // release keeps answers in a format of its own (0.1.0 kept the status in a column), so
    // across releases a repeat is a conflict rather than a replay: never a second change.
    let admin = cli(
        old,
        &db,
        &["admin-token", "create", "--scopes", "read,write"],
        "",
    )["admin_token"]
        .as_str()
        .unwrap()
        .to_string();
    let keyed = |base: String, key: &'static str, name: &'static str| {
        let admin = &admin;
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/admin/v1/scopes"))
                .bearer_auth(admin)
                .header("Idempotency-Key", key)
                .json(&json!({"names": [name]}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().contains_key("idempotent-replayed"),
            )
        }
    };
    for (first, then) in [(&new_base, &old_base), (&old_base, &new_base)] {
        let (key, name) = if first == &new_base {
            ("k-new-first", "upgrade-a")
        } else {
            ("k-old-first", "upgrade-b")
        };
        assert_eq!(keyed(first.clone(), key, name).await, (200, false));
        assert_eq!(
            keyed(first.clone(), key, name).await,
            (200, true),
            "{first}"
        );
        assert_eq!(keyed(then.clone(), key, name).await.0, 409, "{then}");
    }

    // The old release restarts on the migrated database and carries on.
    stop(old_node);
    let (old_node, old_base) = node(old, &db);
    refresh(old_base.clone(), rt).await;
    refresh(new_base.clone(), rt2).await;
    machine(old_base).await;
    stop(old_node);
    stop(new_node);
}
