//! A full flow, then a look at everything the test binary logged: no password, secret or token
//! of this flow may appear.

use crate::support::{TestServer, exchange_body, logs, machine_token_body, refresh_body};

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let partner_token = tessera_core::operations::create_partner_token(
        t.store.as_ref(),
        &crate::support::operator(),
        &p.id,
        tessera_core::unix_now(),
    )
    .await
    .unwrap()
    .partner_token;
    let bearer = format!("Bearer {partner_token}");
    let r = t
        .post("/v2/accounts", Some(&bearer), r#"{"name":"L"}"#)
        .await;
    let acc = r.data("account_id");
    let mt = t
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    let (at, rt) = (r.data("access_token"), r.data("refresh_token"));
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    let rt2 = r.data("refresh_token");
    // Failures log too: a wrong password and a reused token.
    let wrong = b.replace(&b[10..14], "AAAA");
    t.post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
        .await;
    t.post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    t.post(
        "/v2/oauth/revoke",
        Some(&b),
        &serde_json::json!({"token": rt2}).to_string(),
    )
    .await;

    let logged = logs();
    assert!(
        logged.contains("tessera::access") && logged.contains("/v2/oauth/token"),
        "the access log should record requests"
    );
    for (what, secret) in [
        ("partner password", p.password.as_str()),
        ("basic header", &b[6..]),
        ("partner token", partner_token.as_str()),
        ("machine token signature", mt.rsplit('.').next().unwrap()),
        ("access token signature", at.rsplit('.').next().unwrap()),
        ("refresh token", &rt[4..]),
        ("rotated refresh token", &rt2[4..]),
    ] {
        assert!(!logged.contains(secret), "the {what} appeared in the logs");
    }
}

/// `--log-format json`: every line on stderr is a JSON object, each request answers with an
/// `X-Request-Id` (the caller's when well-formed, a fresh UUID otherwise) and its access line
/// carries the same id.
#[tokio::test]
async fn json_logs_carry_the_request_id_that_the_response_returns() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("logs.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--database", &db])
        .env("TESSERA_MASTER_KEY", "55".repeat(32))
        .env("TESSERA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("serve started");
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        let message = parsed["fields"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        lines.push(parsed);
        if let Some(rest) = message.strip_prefix("tessera listening on http://") {
            break rest.to_string();
        }
    };
    let http = reqwest::Client::new();
    let given = http
        .get(format!("http://{addr}/healthz"))
        .header("X-Request-Id", "lb-7f3a.42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "lb-7f3a.42");
    let refused = http
        .get(format!("http://{addr}/v2/nothing"))
        .header("X-Request-Id", "two words")
        .send()
        .await
        .unwrap();
    let made = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // A username with Unicode line separators reaches the audit log line (TESSERA_LOG=info
    // enables it): they must come out escaped, or line-splitting shippers break the line.
    let odd = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "u\u{2028}v\u{85}w@x.example:pw",
    );
    http.post(format!("http://{addr}/v2/oauth/token"))
        .header("Authorization", format!("Basic {odd}"))
        .header("Content-Type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert!(
        uuid::Uuid::parse_str(&made).is_ok(),
        "a malformed id is replaced by a UUID, got {made}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        assert!(
            !line.contains(['\u{2028}', '\u{85}']),
            "a raw line separator: {line}"
        );
        lines.push(serde_json::from_str(&line).expect("a JSON log line"));
    }
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["username"].as_str() == Some("u\u{2028}v\u{85}w@x.example")),
        "the audit line names the username, escaped on the wire and intact once parsed"
    );
    let access = |id: &str| {
        lines.iter().any(|l| {
            l["target"] == "tessera::access"
                && l["request_id"] == id
                && l["fields"]["message"] == "request"
        })
    };
    assert!(access("lb-7f3a.42"), "no access line for the given id");
    assert!(access(&made), "no access line for the made id");
}
