//! The admin CLI as the README (*Administration*) writes it, run as the real binary against a database that a running
//! server also uses: JSON on stdout, clear errors on stderr with a non-zero exit, passwords only
//! from stdin, and changes seen by the server within one second.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tessera_core::master::MasterKey;

use crate::support::{TestServer, config, machine_token_body, within_one_second};

fn tessera(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .args(["--database", db])
        .env_remove("TESSERA_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should have failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(needle),
        "stderr {err:?} should mention {needle:?}"
    );
    assert!(out.stdout.is_empty());
}

// The CLI runs as a blocking child process while the server runs in this test's runtime:
// with one thread, the server's background audit appender could not commit meanwhile and
// would hold SQLite's write lock against the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_contract_and_a_running_server_that_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());

    // Registry set-up through the CLI, before any server exists.
    let out = ok_json(&tessera(&db, &["scope", "add", "transport", "crm"], None));
    assert_eq!(out["scopes"], serde_json::json!(["crm", "transport"]));
    let create = [
        "partner",
        "create",
        "--name",
        "Acme",
        "--email",
        "ops@acme.example",
        "--password-stdin",
        "--scopes",
        "transport,crm",
        "--org-code",
        "ACME",
    ];
    let out = ok_json(&tessera(&db, &create, Some("a-long-enough-secret\n")));
    let partner_id = out["partner_id"].as_str().unwrap().to_string();
    assert_eq!(out["org_code"], "ACME");

    fails_with(
        &tessera(&db, &create, Some("a-long-enough-secret\n")),
        "already exists",
    );
    let mut weak = create;
    weak[5] = "weak@acme.example";
    fails_with(&tessera(&db, &weak, Some("short\n")), "too weak");
    let mut unknown_scope = create;
    unknown_scope[5] = "scope@acme.example";
    unknown_scope[8] = "transport,teleport";
    fails_with(
        &tessera(&db, &unknown_scope, Some("a-long-enough-secret\n")),
        "unknown scope",
    );
    let mut no_stdin = create.to_vec();
    no_stdin.retain(|a| *a != "--password-stdin");
    no_stdin[5] = "argv@acme.example";
    fails_with(&tessera(&db, &no_stdin, None), "--password-stdin");
    fails_with(
        &tessera(
            &db,
            &[
                "partner",
                "set-status",
                "--partner",
                "nope",
                "--status",
                "inactive",
            ],
            None,
        ),
        "no partner nope",
    );
    fails_with(
        &tessera(
            &db,
            &["partner", "token", "create", "--partner", "nope"],
            None,
        ),
        "no partner nope",
    );

    let out = ok_json(&tessera(
        &db,
        &[
            "client",
            "create",
            "--partner",
            &partner_id,
            "--name",
            "App",
            "--grant-types",
            "client_credentials,refresh_token",
            "--scopes",
            "crm",
            "--redirect-uri",
            "https://app.example/cb",
        ],
        None,
    ));
    assert!(out["client_id"].as_str().unwrap().starts_with("tc_"));
    assert!(out["client_secret"].as_str().unwrap().starts_with("tcs_"));
    fails_with(
        &tessera(
            &db,
            &[
                "client",
                "create",
                "--partner",
                "nope",
                "--name",
                "App",
                "--grant-types",
                "client_credentials",
                "--scopes",
                "crm",
            ],
            None,
        ),
        "unknown partner",
    );
    // Origins and redirect URIs are parsed as a browser would (issue 9, item 11): no wildcard,
    // no userinfo past the loopback rule, and no argument panics the CLI.
    for (flag, value, needle) in [
        ("--frame-origin", "https://a.example *", "is not an origin"),
        ("--frame-origin", "http://", "is not an origin"),
        ("--frame-origin", "*", "is not an origin"),
        (
            "--redirect-uri",
            "http://127.0.0.1:80@evil.example/cb",
            "userinfo",
        ),
        ("--redirect-uri", "http://", "not an absolute URI"),
        (
            "--frame-origin",
            "https://a.example;script-src",
            "is not an origin",
        ),
        (
            "--redirect-uri",
            "http://127.0.0.1\\@evil.example/cb",
            "normal form",
        ),
        ("--redirect-uri", "https://ü.example/cb", "normal form"),
    ] {
        let out = tessera(
            &db,
            &[
                "client",
                "create",
                "--partner",
                &partner_id,
                "--name",
                "App",
                "--grant-types",
                "authorization_code",
                "--scopes",
                "crm",
                flag,
                value,
            ],
            None,
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{flag} {value}"
        );
        fails_with(&out, needle);
    }
    let out = ok_json(&tessera(
        &db,
        &[
            "user",
            "create",
            "--partner",
            &partner_id,
            "--username",
            "admin@acme.example",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some("another-long-secret\n"),
    ));
    assert!(out["user_id"].is_string());

    // Now a server on the same database.
    let master_hex =
        std::fs::read_to_string(format!("{}.key", db.trim_start_matches("sqlite://"))).ok();
    assert!(
        master_hex.is_none(),
        "no key file until serve or keys rotate"
    );
    let key_path = dir.path().join("cli.db.key");
    let master = MasterKey::generate();
    std::fs::write(&key_path, master.to_hex().as_bytes()).unwrap();
    let t = TestServer::start_on(
        dir,
        db.clone(),
        config(),
        MasterKey::parse(&master.to_hex()).unwrap(),
    )
    .await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "ops@acme.example:a-long-enough-secret"
        )
    );
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&basic),
            &machine_token_body("transport,crm"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A partner token made by the CLI works at once.
    let out = ok_json(&tessera(
        &db,
        &["partner", "token", "create", "--partner", &partner_id],
        None,
    ));
    let bearer = format!("Bearer {}", out["partner_token"].as_str().unwrap());
    let r = t
        .post("/v2/accounts", Some(&bearer), r#"{"name":"x"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Deactivation reaches the server (and its credential cache) within one second.
    ok_json(&tessera(
        &db,
        &[
            "partner",
            "set-status",
            "--partner",
            &partner_id,
            "--status",
            "inactive",
        ],
        None,
    ));
    within_one_second("the running server sees the CLI's change", || async {
        t.post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
            .await
            .code()
            == "OAUTH_PARTNER_INACTIVE"
    })
    .await;
    ok_json(&tessera(
        &db,
        &[
            "partner",
            "set-status",
            "--partner",
            &partner_id,
            "--status",
            "active",
        ],
        None,
    ));
    within_one_second("the running server sees the CLI's change", || async {
        t.post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
            .await
            .status
            == 200
    })
    .await;

    // Key rotation: the new key signs and is published within one second; the old stays published.
    let before = ok_json(&tessera(&db, &["keys", "list"], None));
    let old_kid = before["keys"][0]["kid"].as_str().unwrap().to_string();
    assert_eq!(before["keys"][0]["state"], "active");
    // The key file was written 0644 above: the CLI says so on stderr (issue 9, item 13).
    let rotated = tessera(&db, &["keys", "rotate", "--alg", "EdDSA"], None);
    assert!(
        String::from_utf8_lossy(&rotated.stderr).contains("readable by other users"),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let out = ok_json(&rotated);
    let new_kid = out["kid"].as_str().unwrap().to_string();
    // The database and its WAL and shared-memory files are the owner's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        let path = db.trim_start_matches("sqlite://");
        for f in [
            path.to_string(),
            format!("{path}-wal"),
            format!("{path}-shm"),
        ] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}: {mode:o}");
        }
    }
    within_one_second("the running server sees the CLI's change", || async {
        let r = t
            .post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
            .await;
        let token = r.data("access_token");
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        header["kid"] == new_kid.as_str() && header["alg"] == "EdDSA"
    })
    .await;
    let jwks = t.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    let states_of = |purpose: &str| {
        let list = ok_json(&tessera(&db, &["keys", "list"], None));
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["purpose"] == purpose)
            .map(|k| k["state"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(states_of("access"), ["published", "active"]);
    // The ID-token lane (OpenID Connect) rotates on its own, always RS256.
    assert_eq!(states_of("id_token"), ["active"]);
    let id = ok_json(&tessera(&db, &["keys", "rotate", "--id-token"], None));
    assert_eq!(
        (id["purpose"].as_str(), id["alg"].as_str()),
        (Some("id_token"), Some("RS256"))
    );
    assert_eq!(states_of("id_token"), ["published", "active"]);
    assert_eq!(states_of("access"), ["published", "active"]);

    // Revoking the active key (compromised): a new key takes over, the revoked one leaves the
    // JWKS, and a token it signed stops verifying within a second, cached or not.
    let signed = t
        .post("/v2/oauth/token", Some(&basic), &machine_token_body("crm"))
        .await
        .data("access_token");
    let now = tessera_core::unix_now();
    assert!(
        t.engine().verify_token(&signed, now).is_ok(),
        "verified once: cached"
    );
    let out = ok_json(&tessera(&db, &["keys", "revoke", &new_kid], None));
    let replacement = out["replaced_by"].as_str().unwrap().to_string();
    within_one_second("the running server sees the CLI's change", || async {
        t.engine()
            .verify_token(&signed, tessera_core::unix_now())
            .is_err()
    })
    .await;
    let jwks = t.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!kids.contains(&new_kid.as_str()) && kids.contains(&replacement.as_str()));
    fails_with(
        &tessera(&db, &["keys", "revoke", &new_kid], None),
        "already revoked",
    );
    fails_with(
        &tessera(&db, &["keys", "revoke", "nope"], None),
        "no signing key",
    );
}

#[tokio::test]
async fn serve_dev_creates_demo_data_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("dev.db").display());
    let run = |expect_secrets: bool| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "serve",
                "--dev",
                "--shutdown-grace",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &db,
            ])
            .env_remove("TESSERA_MASTER_KEY")
            .env("TESSERA_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the "listening" line on stderr.
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let addr = loop {
            let line = lines.next().expect("serve exited early").unwrap();
            if let Some(rest) = line.split("tessera listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // On the first run, the printed authorization URL opens the sign-in page.
        let mut printed = String::new();
        if expect_secrets {
            let out = child.stdout.take().unwrap();
            let mut out = std::io::BufRead::lines(std::io::BufReader::new(out));
            let url = loop {
                let line = out.next().expect("no authorization URL printed").unwrap();
                printed.push_str(&line);
                printed.push('\n');
                if let Some(url) = line.trim().strip_prefix(&format!("http://{addr}")) {
                    break url.to_string();
                }
            };
            assert!(url.starts_with("/oauth/authorize?"), "{url}");
            let page = http_get(&addr, &url, "");
            // The pending request is bound to the browser by a cookie: send it back.
            let cookies: Vec<&str> = header(&page, "set-cookie")
                .filter_map(|c| c.split(';').next())
                .collect();
            let next = header(&page, "location").next().map(str::to_string);
            let page = match next {
                Some(next) => http_get(&addr, &next, &cookies.join("; ")),
                None => page,
            };
            assert!(page.starts_with("HTTP/1.1 200"), "{page}");
            assert!(page.contains("name=\"password\""), "{page}");
            std::thread::spawn(move || for _ in out {});
        }
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "serve should exit 0 on SIGTERM");
        let stdout = printed + &String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.contains("partner password"),
            expect_secrets,
            "{stdout}"
        );
        assert!(stdout.contains("demo-partner@tessera.example"));
        assert_eq!(
            stdout.contains("demo-customer@tessera.example"),
            expect_secrets
        );
        addr
    };
    let addr = run(true);
    assert!(addr.starts_with("127.0.0.1:"));
    run(false);
    let key = dir.path().join("dev.db.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

/// After a leak, an operator revokes or replaces each kind of credential from the CLI, and a
/// running server follows within a second (issue 9, item 12).
// Multi-threaded: see the first test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_after_a_leak_are_replaced_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("leak.db").display());
    ok_json(&tessera(&db, &["scope", "add", "crm"], None));
    let partner = ok_json(&tessera(
        &db,
        &[
            "partner",
            "create",
            "--name",
            "Acme",
            "--email",
            "ops@leak.example",
            "--password-stdin",
            "--scopes",
            "crm",
        ],
        Some("the-first-long-secret\n"),
    ))["partner_id"]
        .as_str()
        .unwrap()
        .to_string();
    let client = ok_json(&tessera(
        &db,
        &[
            "client",
            "create",
            "--partner",
            &partner,
            "--name",
            "App",
            "--grant-types",
            "client_credentials,password",
            "--scopes",
            "crm",
        ],
        None,
    ));
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let first_secret = client["client_secret"].as_str().unwrap().to_string();
    ok_json(&tessera(
        &db,
        &[
            "user",
            "create",
            "--partner",
            &partner,
            "--username",
            "boss@leak.example",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some("the-bosss-long-secret\n"),
    ));
    let master = MasterKey::generate();
    let t = TestServer::start_on(dir, db.clone(), config(), master).await;
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let app_token = |secret: String| {
        let (t, id) = (&t, client_id.clone());
        async move {
            t.form(
                "/oauth/token",
                Some(&format!("Basic {}", b64(&format!("{id}:{secret}")))),
                &[("grant_type", "client_credentials")],
            )
            .await
        }
    };

    // A partner API token, revoked by its value on stdin.
    let token = ok_json(&tessera(
        &db,
        &["partner", "token", "create", "--partner", &partner],
        None,
    ))["partner_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = format!("Bearer {token}");
    assert_eq!(t.get("/v2/accounts", Some(&bearer)).await.status, 200);
    let out = ok_json(&tessera(
        &db,
        &["partner", "token", "revoke", "--token-stdin"],
        Some(&format!("{token}\n")),
    ));
    assert_eq!(out["revoked"], 1);
    within_one_second("the running server sees the CLI's change", || async {
        t.get("/v2/accounts", Some(&bearer)).await.status == 401
    })
    .await;

    // A client secret, rotated with an overlap: both work, then without one: the old stops.
    let out = ok_json(&tessera(
        &db,
        &[
            "client",
            "rotate-secret",
            "--client",
            &client_id,
            "--overlap",
            "600",
        ],
        None,
    ));
    let second_secret = out["client_secret"].as_str().unwrap().to_string();
    within_one_second("the running server sees the CLI's change", || async {
        app_token(second_secret.clone()).await.status == 200
    })
    .await;
    assert_eq!(app_token(first_secret.clone()).await.status, 200, "overlap");
    let out = ok_json(&tessera(
        &db,
        &["client", "rotate-secret", "--client", &client_id],
        None,
    ));
    let third_secret = out["client_secret"].as_str().unwrap().to_string();
    within_one_second("the running server sees the CLI's change", || async {
        app_token(second_secret.clone()).await.status == 401
            && app_token(third_secret.clone()).await.status == 200
    })
    .await;

    // A disabled client authenticates no more, and its tokens stop verifying.
    let issued = app_token(third_secret.clone()).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = format!("Bearer {issued}");
    assert_eq!(t.get("/api/users/me", Some(&me)).await.status, 200);
    ok_json(&tessera(
        &db,
        &[
            "client",
            "set-status",
            "--client",
            &client_id,
            "--status",
            "disabled",
        ],
        None,
    ));
    within_one_second("the running server sees the CLI's change", || async {
        app_token(third_secret.clone()).await.status == 401
            && t.get("/api/users/me", Some(&me)).await.status == 401
    })
    .await;
    ok_json(&tessera(
        &db,
        &[
            "client",
            "set-status",
            "--client",
            &client_id,
            "--status",
            "active",
        ],
        None,
    ));
    within_one_second("the running server sees the CLI's change", || async {
        app_token(third_secret.clone()).await.status == 200
    })
    .await;

    // Passwords, replaced from stdin: the old ones stop, the new ones work.
    ok_json(&tessera(
        &db,
        &[
            "partner",
            "set-password",
            "--partner",
            &partner,
            "--password-stdin",
        ],
        Some("the-second-long-secret\n"),
    ));
    let old = format!("Basic {}", b64("ops@leak.example:the-first-long-secret"));
    let new = format!("Basic {}", b64("ops@leak.example:the-second-long-secret"));
    within_one_second("the running server sees the CLI's change", || async {
        t.get("/v2/accounts", Some(&old)).await.status == 401
            && t.get("/v2/accounts", Some(&new)).await.status == 200
    })
    .await;
    ok_json(&tessera(
        &db,
        &[
            "user",
            "set-password",
            "--partner",
            &partner,
            "--username",
            "boss@leak.example",
            "--password-stdin",
        ],
        Some("the-bosss-new-secret\n"),
    ));
    let grant = |password: &'static str| {
        let (t, auth) = (
            &t,
            format!("Basic {}", b64(&format!("{client_id}:{third_secret}"))),
        );
        async move {
            t.form(
                "/oauth/token",
                Some(&auth),
                &[
                    ("grant_type", "password"),
                    ("username", "boss@leak.example"),
                    ("password", password),
                ],
            )
            .await
            .status
        }
    };
    within_one_second("the running server sees the CLI's change", || async {
        grant("the-bosss-long-secret").await == 401 && grant("the-bosss-new-secret").await == 200
    })
    .await;
}

/// The inventory (issue 11, item 4): list and show partners, clients, users, grants and scopes
/// as JSON, a page at a time, with no secret in any view; unknown ids fail clearly.
#[tokio::test]
async fn the_inventory_lists_and_shows_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    ok_json(&tessera(
        &db,
        &["scope", "add", "crm", "--description", "Contacts"],
        None,
    ));
    let mut partners = Vec::new();
    for n in 0..3 {
        let email = format!("p{n}@inv.example");
        let out = ok_json(&tessera(
            &db,
            &[
                "partner",
                "create",
                "--name",
                "P",
                "--email",
                &email,
                "--password-stdin",
                "--scopes",
                "crm",
            ],
            Some("a-long-enough-secret\n"),
        ));
        partners.push(out["partner_id"].as_str().unwrap().to_string());
    }
    partners.sort();
    // Pages of two, the second after the first's `next`.
    let first = ok_json(&tessera(&db, &["partner", "list", "--limit", "2"], None));
    let ids: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partner_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, partners[..2]);
    let next = first["next"].as_str().unwrap();
    let second = ok_json(&tessera(
        &db,
        &["partner", "list", "--limit", "2", "--after", next],
        None,
    ));
    assert_eq!(second["items"][0]["partner_id"], partners[2]);
    assert!(second["next"].is_null());
    let shown = ok_json(&tessera(&db, &["partner", "show", &partners[0]], None));
    assert_eq!(shown["status"], "active");

    let client = ok_json(&tessera(
        &db,
        &[
            "client",
            "create",
            "--partner",
            &partners[0],
            "--name",
            "App",
            "--grant-types",
            "client_credentials",
            "--scopes",
            "crm",
        ],
        None,
    ));
    let client_id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap().to_string();
    let listed = ok_json(&tessera(
        &db,
        &["client", "list", "--partner", &partners[0]],
        None,
    ));
    assert_eq!(listed["items"][0]["client_id"], client_id);
    assert_eq!(listed["items"][0]["grant_types"][0], "client_credentials");
    let shown = ok_json(&tessera(&db, &["client", "show", client_id], None));
    assert_eq!(shown["status"], "active");

    ok_json(&tessera(
        &db,
        &[
            "user",
            "create",
            "--partner",
            &partners[1],
            "--username",
            "Admin@Inv.Example",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some("a-long-enough-secret\n"),
    ));
    let users = ok_json(&tessera(
        &db,
        &[
            "user",
            "list",
            "--username",
            "ADMIN@inv.example",
            "--role",
            "admin",
        ],
        None,
    ));
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    let user_id = users["items"][0]["user_id"].as_str().unwrap();
    assert_eq!(
        ok_json(&tessera(&db, &["user", "show", user_id], None))["partner_id"],
        partners[1]
    );
    let grants = ok_json(&tessera(&db, &["grant", "list", "--user", user_id], None));
    assert!(grants["items"].as_array().unwrap().is_empty());
    fails_with(&tessera(&db, &["grant", "list"], None), "--user");
    let scopes = ok_json(&tessera(&db, &["scope", "list"], None));
    assert_eq!(scopes["scopes"][0]["description"], "Contacts");

    fails_with(
        &tessera(&db, &["client", "show", "nope"], None),
        "no client nope",
    );
    fails_with(
        &tessera(&db, &["partner", "list", "--limit", "0"], None),
        "at least 1",
    );
    // No view carries a secret or a hash.
    let everything = [
        tessera(&db, &["partner", "list"], None),
        tessera(&db, &["client", "list"], None),
        tessera(&db, &["user", "list"], None),
    ]
    .iter()
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .collect::<String>();
    for needle in ["argon2", "password", "digest", &secret[4..]] {
        assert!(!everything.contains(needle), "{needle} in {everything}");
    }
}

/// The audit trail (issue 11, item 2) answers "who failed to sign in as X, from where" through
/// `tessera audit`; it names tokens by `jti` and never holds a token or a password.
// Multi-threaded: see the first test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_answers_who_failed_to_sign_in_and_from_where() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("audit.db").display());
    ok_json(&tessera(&db, &["scope", "add", "crm"], None));
    let password = "a-long-enough-secret";
    let partner = ok_json(&tessera(
        &db,
        &[
            "partner",
            "create",
            "--name",
            "A",
            "--email",
            "ops@audit.example",
            "--password-stdin",
            "--scopes",
            "crm",
        ],
        Some(&format!("{password}\n")),
    ))["partner_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = TestServer::start_on(dir, db.clone(), config(), MasterKey::generate()).await;
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let wrong = format!("Basic {}", b64("ops@audit.example:not-the-password"));
    let failed = t
        .post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
        .await;
    assert_eq!(failed.status, 401);
    let failed_id = failed.headers["x-request-id"].to_str().unwrap().to_string();
    let right = format!("Basic {}", b64(&format!("ops@audit.example:{password}")));
    let token = t
        .post("/v2/oauth/token", Some(&right), &machine_token_body("crm"))
        .await
        .data("access_token");
    t.engine().flush_audit().await;

    let lines = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        let out = tessera(&db, &all, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains(password) && !text.contains(token.rsplit('.').next().unwrap()));
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let failures = lines(&[
        "--user",
        "OPS@audit.example",
        "--event",
        "partner.sign_in_failed",
        "--since",
        "1d",
    ]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let f = &failures[0];
    assert_eq!(f["ip"], "127.0.0.1");
    assert_eq!(f["request_id"], failed_id.as_str());
    assert!(
        f["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("wrong password")
    );
    assert!(f["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        lines(&["--user", "ops@audit.example", "--event", "partner.sign_in"]).len(),
        1
    );

    let issued = lines(&["--event", "token.issued", "--partner", &partner]);
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["detail"]["grant"], "client_credentials");
    assert_eq!(
        issued[0]["detail"]["jti"],
        crate::support::claims(&token)["jti"]
    );

    let changes = lines(&["--event", "admin.change"]);
    assert!(
        changes
            .iter()
            .any(|c| c["detail"]["change"] == "partner.create"
                && c["partner_id"] == partner.as_str()
                && c["detail"]["by"].as_str().unwrap().starts_with("cli:"))
    );
    // A window that ends before the events holds none; newest first, limited.
    assert!(lines(&["--until", "2000-01-01"]).is_empty());
    let two = lines(&["--limit", "2"]);
    assert_eq!(two.len(), 2);
    assert!(two[0]["id"].as_i64() > two[1]["id"].as_i64());
    // A flood of guesses at a locked-out username is one `lockout` row a minute, not one per
    // guess (found by an attack: refused guesses cost no Argon2, so rows were nearly free).
    let ghost = format!("Basic {}", b64("ghost@audit.example:guess"));
    for _ in 0..25 {
        t.post("/v2/oauth/token", Some(&ghost), &machine_token_body("crm"))
            .await;
    }
    t.engine().flush_audit().await;
    assert_eq!(
        lines(&["--user", "ghost@audit.example", "--event", "lockout"]).len(),
        1
    );
    fails_with(
        &tessera(&db, &["audit", "--event", "nope"], None),
        "unknown event",
    );
    fails_with(
        &tessera(&db, &["audit", "--since", "2026-02-30"], None),
        "is not a time",
    );
    fails_with(
        &tessera(&db, &["audit", "--since", "yesterday"], None),
        "is not a time",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_are_made_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("adm.db").display());
    // The CLI creates the database; the server then opens it.
    let made = ok_json(&tessera(
        &db,
        &[
            "admin-token",
            "create",
            "--scopes",
            "read",
            "--name",
            "reports",
        ],
        None,
    ));
    let token = made["admin_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("tat_"));
    assert_eq!(made["scopes"], serde_json::json!(["read"]));
    let t = TestServer::start_on(
        dir,
        db.clone(),
        config(),
        tessera_core::master::MasterKey::generate(),
    )
    .await;
    let call = |token: String| {
        let url = t.url("/admin/v1/scopes");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(token.clone()).await, 200);
    let listed = ok_json(&tessera(&db, &["admin-token", "list"], None));
    assert!(!listed.to_string().contains(&token), "no secret listed");
    assert_eq!(listed["admin_tokens"][0]["name"], "reports");
    let id = made["id"].as_str().unwrap();
    ok_json(&tessera(&db, &["admin-token", "revoke", id], None));
    assert_eq!(call(token).await, 401, "refused at its next call");
    fails_with(
        &tessera(&db, &["admin-token", "revoke", id], None),
        "no unrevoked admin token",
    );
    fails_with(
        &tessera(&db, &["admin-token", "create", "--scopes", "root"], None),
        "unknown scope",
    );
}

/// Attack 4 (issue 18, I6): after `user set-password` (a leaked password replaced) or `user
/// sessions revoke`, a browser session the attacker already holds completes no `/authorize`:
/// the next one needs a fresh sign-in, on every node. (Two threads, as every test here that
/// runs the CLI beside a server: see the first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_and_sessions_revoke_end_the_browser_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let t = TestServer::start_on(dir, db.clone(), config(), MasterKey::generate()).await;
    let s = crate::authcode::setup(&t, &[], false).await;
    let path = crate::authcode::authorize_path("standard", &s.client_id, &[]);
    // Signed in and consented: the next /authorize goes straight back with a code.
    let signed_in = || async {
        let mut agent = crate::authcode::Agent::new(&t.url(""));
        crate::authcode::authorize(&mut agent, &s, &path).await;
        let r = agent.get(&path).await;
        assert!(
            r.location.as_deref().unwrap().contains("code="),
            "{:?}",
            r.location
        );
        agent
    };
    let needs_sign_in = |r: &crate::authcode::Page| {
        r.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/oauth/login"))
    };

    let mut attacker = signed_in().await;
    let out = ok_json(&tessera(
        &db,
        &[
            "user",
            "set-password",
            "--partner",
            &s.partner.id,
            "--username",
            &s.user_email,
            "--password-stdin",
        ],
        Some("a-brand-new-customer-secret\n"),
    ));
    assert_eq!(out["user_id"], s.user_id);
    let r = attacker.get(&path).await;
    assert!(
        needs_sign_in(&r),
        "after the reset: {:?} {}",
        r.location,
        r.body
    );

    let s = crate::authcode::Setup {
        user_password: "a-brand-new-customer-secret".into(),
        ..s
    };
    // The new password reaches the server's caches through the change feed (within a second);
    // apply it now rather than race the poll.
    t.settle().await;
    let mut browser = {
        let mut agent = crate::authcode::Agent::new(&t.url(""));
        crate::authcode::authorize(&mut agent, &s, &path).await;
        agent
    };
    let out = ok_json(&tessera(
        &db,
        &[
            "user",
            "sessions",
            "revoke",
            "--partner",
            &s.partner.id,
            "--username",
            &s.user_email,
        ],
        None,
    ));
    assert_eq!(
        (out["user_id"].as_str(), out["sessions"].as_u64()),
        (Some(s.user_id.as_str()), Some(1))
    );
    let r = browser.get(&path).await;
    assert!(
        needs_sign_in(&r),
        "after sessions revoke: {:?} {}",
        r.location,
        r.body
    );
}

/// `tessera backup --to FILE` (issue 19, item 6): a copy taken while refreshes rotate is a
/// consistent database (`PRAGMA integrity_check`), private (0600), and every refresh token
/// answered before the backup began refreshes from it once restored; PostgreSQL is refused with
/// a pointer to `pg_dump`, and an existing file is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_refresh_load_restores_every_answered_token() {
    use crate::support::{exchange_body, refresh_body};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("live.db");
    let db = format!("sqlite://{}", db_path.display());
    let backup = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let master_hex = master.to_hex().to_string();
    let t = Arc::new(TestServer::start_on(dir, db.clone(), config(), master).await);
    let p = t.partner().await;
    let b = p.basic();
    let mt = t
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let account = t
        .post("/v2/accounts", Some(&b), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    let mut answered = Vec::new();
    for _ in 0..6 {
        let r = t
            .post(
                "/v2/oauth/token",
                Some(&b),
                &exchange_body(&mt, &account, "crm"),
            )
            .await;
        answered.push(r.data("refresh_token"));
    }
    // Refreshes keep rotating other families while the copy is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (t, b, stop) = (Arc::clone(&t), b.clone(), Arc::clone(&stop));
        let (mt, account) = (mt.clone(), account.clone());
        tokio::spawn(async move {
            let mut rt = t
                .post(
                    "/v2/oauth/token",
                    Some(&b),
                    &exchange_body(&mt, &account, "crm"),
                )
                .await
                .data("refresh_token");
            let mut rotations = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = t
                    .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                rt = r.data("refresh_token");
                rotations += 1;
            }
            rotations
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let to = backup.path().join("copy.db");
    let to_arg = to.display().to_string();
    let out = tokio::task::spawn_blocking({
        let (db, to_arg) = (db.clone(), to_arg.clone());
        move || tessera(&db, &["backup", "--to", &to_arg], None)
    })
    .await
    .unwrap();
    let view = ok_json(&out);
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 0, "refreshes ran during the backup");
    assert_eq!(
        view["bytes"].as_u64(),
        Some(std::fs::metadata(&to).unwrap().len())
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&to).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never over an existing file; never PostgreSQL.
    fails_with(
        &tessera(&db, &["backup", "--to", &to_arg], None),
        "cannot create",
    );
    fails_with(
        &tessera(
            "postgres://u:p@127.0.0.1:1/x",
            &["backup", "--to", "/tmp/x.db"],
            None,
        ),
        "pg_dump",
    );

    // The copy is whole, and a server restored from it honours every answered token.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{to_arg}"))
            .await
            .unwrap();
        let check: (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(check.0, "ok");
    }
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = restored_dir.path().join("restored.db");
    std::fs::copy(&to, &restored).unwrap();
    let r = TestServer::start_on(
        restored_dir,
        format!("sqlite://{}", restored.display()),
        config(),
        MasterKey::parse(&master_hex).unwrap(),
    )
    .await;
    for rt in &answered {
        let got = r.post("/v2/oauth/token", Some(&b), &refresh_body(rt)).await;
        assert_eq!(
            got.status, 200,
            "a token answered before the backup: {}",
            got.body
        );
    }
}

/// One HTTP/1.1 GET over a plain socket (with `cookie`, when not empty): the whole answer.
fn http_get(addr: &str, path: &str, cookie: &str) -> String {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer
}

/// The value of header `name` (lower case) in an answer's lines.
fn header<'a>(answer: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let prefix = format!("{name}:");
    answer
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(move |l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[l.find(':').unwrap() + 1..].trim())
}

/// `tessera --version` names the version and the commit the binary was built from.
#[test]
fn the_version_names_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = line
        .strip_prefix(concat!("tessera ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line}"
    );
}

/// `tessera health` (the container image's HEALTHCHECK) exits 0 for a ready node, over HTTP and
/// HTTPS, and 1 with the reason for a node that is not there.
#[tokio::test]
async fn health_checks_a_node_over_http_and_https() {
    let health = |url: String| async move {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["health", "--url", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let t = TestServer::start().await;
    let out = health(t.url("/readyz")).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 200"));
    let out = health(t.url("/no-such-page")).await;
    fails_with(&out, "404");

    let pki = tempfile::tempdir().unwrap();
    let (files, _ca) = crate::interop::test_pki(pki.path());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let tls = TestServer::start_tls(dir, db, config(), MasterKey::generate(), files).await;
    let out = health(tls.url("/readyz")).await;
    assert!(out.status.success(), "{out:?}");

    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let out = health(format!("http://127.0.0.1:{port}/readyz")).await;
    fails_with(&out, "cannot connect");
}

/// The first hour of a new user (issue 19, item 8): what confused, now said plainly.
#[tokio::test]
async fn the_first_hours_confusions_are_answered_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("typo.db").display());
    // A read command on a database that does not exist refuses it, and creates nothing.
    fails_with(
        &tessera(&missing, &["partner", "list"], None),
        "no database at",
    );
    assert!(!dir.path().join("typo.db").exists());
    // A command that creates something creates the database.
    let db = missing;
    ok_json(&tessera(&db, &["scope", "add", "crm", "transport"], None));
    ok_json(&tessera(&db, &["partner", "list"], None));
    // One description for several scopes would overwrite each one's own.
    fails_with(
        &tessera(
            &db,
            &["scope", "add", "crm", "transport", "--description", "X"],
            None,
        ),
        "name exactly one",
    );
    ok_json(&tessera(
        &db,
        &["scope", "add", "crm", "--description", "Your contacts"],
        None,
    ));
    let scopes = ok_json(&tessera(&db, &["scope", "list"], None)).to_string();
    assert!(scopes.contains("Your contacts"), "{scopes}");
    assert_eq!(scopes.matches("Your contacts").count(), 1, "{scopes}");

    // Without USER, LOGNAME or SUDO_USER (a container, cron), the audit trail names the OS user.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["scope", "add", "billing", "--database", &db])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SUDO_USER")
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .unwrap();
    ok_json(&out);
    let audit = tessera(
        &db,
        &["audit", "--event", "admin.change", "--limit", "1"],
        None,
    );
    assert!(audit.status.success());
    let line: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let by = line["detail"]["by"].as_str().unwrap().to_string();
    assert!(by.starts_with("cli:") && by != "cli:unknown", "{line}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");

    // A port already taken: the cause is said once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tessera(&db, &["serve", "--listen", &addr], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("in use").count(), 1, "{err}");

    // PostgreSQL without the database: what to do, without the server's source line.
    if let Some(url) = crate::support::postgres_url("cli::first_hour on PostgreSQL") {
        let (base, _) = url.rsplit_once('/').unwrap();
        let out = tessera(&format!("{base}/no_such_db"), &["partner", "list"], None);
        fails_with(&out, "has no database \"no_such_db\"");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("at line"));
    }
}
