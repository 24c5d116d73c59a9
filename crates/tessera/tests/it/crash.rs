//! Crash safety on SQLite (issue 10, item 6): a server killed with SIGKILL in the middle of
//! token exchanges and refreshes loses no refresh token it answered, and the database it leaves
//! passes `PRAGMA integrity_check`. A refresh whose answer the kill swallowed is retried after
//! the restart and, rotation being lossless, succeeds.

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{exchange_body, machine_token_body, refresh_body};

const KEY: &str = "4444444444444444444444444444444444444444444444444444444444444444";

fn serve(db: &str) -> (Child, String) {
    let (child, addr) = crate::support::spawn_serve(&["--database", db], KEY);
    (child, format!("http://{addr}"))
}

fn cli(db: &str, args: &[&str], stdin: &str) -> serde_json::Value {
    let this = std::path::Path::new(env!("CARGO_BIN_EXE_tessera"));
    crate::support::cli_json(this, db, args, stdin, KEY)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    body: String,
) -> Option<serde_json::Value> {
    let r = http
        .post(url)
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test]
async fn a_sigkilled_sqlite_server_loses_no_answered_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let db = format!("sqlite://{}", path.display());
    cli(&db, &["scope", "add", "crm"], "");
    cli(
        &db,
        &[
            "partner",
            "create",
            "--name",
            "P",
            "--email",
            "p@crash.example",
            "--password-stdin",
            "--scopes",
            "crm",
        ],
        "violet-harbor-engine-42\n",
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "p@crash.example:violet-harbor-engine-42"
        )
    );
    let (mut victim, base) = serve(&db);
    let http = reqwest::Client::new();
    let token_url = format!("{base}/v2/oauth/token");
    let acc = post(
        &http,
        &format!("{base}/v2/accounts"),
        &auth,
        r#"{"name":"A"}"#.into(),
    )
    .await
    .unwrap()["data"]["account_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mt = post(&http, &token_url, &auth, machine_token_body("crm"))
        .await
        .unwrap()["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Eight workers: exchange, then refresh what the exchange gave; each keeps the tokens it
    // holds (the newest answered one of every chain).
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, auth, exchange, stop) = (
            reqwest::Client::new(),
            token_url.clone(),
            auth.clone(),
            exchange_body(&mt, &acc, "crm"),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(x) = post(&http, &url, &auth, exchange.clone()).await else {
                    break;
                };
                let first = x["data"]["refresh_token"].as_str().unwrap().to_string();
                match post(&http, &url, &auth, refresh_body(&first)).await {
                    Some(r) => held.push(r["data"]["refresh_token"].as_str().unwrap().to_string()),
                    // The kill may have swallowed the answer: the client still holds `first`.
                    None => {
                        held.push(first);
                        break;
                    }
                }
            }
            held
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        Command::new("kill")
            .args(["-KILL", &victim.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = victim.wait();
    stop.store(true, Ordering::Relaxed);
    let mut held = Vec::new();
    for w in workers {
        held.extend(w.await.unwrap());
    }
    assert!(held.len() > 16, "the victim answered {} chains", held.len());
    eprintln!(
        "{} refresh tokens held when the server was killed",
        held.len()
    );

    // Restarted on the same file: every token a client holds refreshes.
    let (mut restarted, base) = serve(&db);
    let token_url = format!("{base}/v2/oauth/token");
    for rt in &held {
        assert!(
            post(&http, &token_url, &auth, refresh_body(rt))
                .await
                .is_some(),
            "a refresh token the killed server answered (or whose answer it swallowed) must work"
        );
    }
    restarted.kill().unwrap();
    let _ = restarted.wait();
    let check = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
}
