//! End to end in a real browser: Debian's Chromium driven through ChromeDriver (WebDriver, via
//! `fantoccini`). Login → consent → code → tokens in both dialects; deny; register; revoke a
//! grant; the iframe rule. Each page is screenshotted at a phone's size; with
//! `TESSERA_SCREENSHOTS=1` the PNGs are written to `docs/screenshots/` (that is how the README's
//! pictures are made), otherwise to a temporary folder.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::authcode::{REDIRECT, VERIFIER, setup};
use crate::support::{TestServer, claims, refresh_body};

struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // ChromeDriver leads its own process group; killing the group takes the browsers it
        // started too, even when a failed test never closed its session.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (Debian: chromium chromium-driver; .ci/run installs them)");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver {
        child,
        url,
        _profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--disable-quic", "--window-size=412,915",
                     format!("--user-data-dir={}", driver._profile.path().display())],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("connect to chromedriver")
}

fn screenshot_dir() -> PathBuf {
    if std::env::var_os("TESSERA_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        std::env::temp_dir().join("tessera-screenshots")
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.wait().for_element(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// An absolute `/authorize` URL that returns to `redirect`.
fn authorize_url(base: &str, dialect: &str, client_id: &str, redirect: &str) -> String {
    let path = crate::authcode::authorize_path(dialect, client_id, &[]).replace(
        &form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        &form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
    );
    format!("{base}{path}")
}

#[tokio::test]
async fn login_consent_deny_register_revoke_and_framing_in_chromium() {
    // A stuck browser must fail the test, not hang the suite.
    tokio::time::timeout(Duration::from_secs(180), scenario())
        .await
        .expect("the browser scenario did not finish within 3 minutes");
}

async fn scenario() {
    let t = TestServer::start().await;
    // A page on another origin that frames the authorization pages.
    let framer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let framer_origin = format!("http://localhost:{}", framer.local_addr().unwrap().port());
    let s = setup(&t, std::slice::from_ref(&framer_origin), true).await;
    let unframed = setup(&t, &[], true).await;
    let base = t.base.clone();
    let (framed_id, unframed_id) = (s.client_id.clone(), unframed.client_id.clone());
    let app = axum::Router::new().route(
        "/frame/{client}",
        axum::routing::get(move |axum::extract::Path(client): axum::extract::Path<String>| {
            let src = authorize_url(&base, "standard", &client, &format!("{base}/oauth/debug-callback"));
            async move {
                axum::response::Html(format!(
                    "<!doctype html><title>Partner</title><iframe id=f src=\"{}\" width=400 height=700></iframe>",
                    src.replace('&', "&amp;")
                ))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(framer, app).await.unwrap() });

    let driver = start_driver().await;
    let c = browser(&driver).await;
    let debug = format!("{}/oauth/debug-callback", t.base);

    // Login → consent → code, then tokens through the standard dialect.
    c.goto(&authorize_url(&t.base, "standard", &s.client_id, &debug))
        .await
        .unwrap();
    assert!(text(&c, "p.eyebrow").await.contains("Acme CRM"));
    shot(&c, "login").await;
    fill(&c, "#username", &s.user_email).await;
    fill(&c, "#password", "not-the-password").await;
    click(&c, "#login-form button").await;
    assert!(text(&c, "#error").await.contains("not right"));
    shot(&c, "login-error").await;
    fill(&c, "#password", &s.user_password).await;
    click(&c, "#login-form button").await;
    assert!(
        text(&c, "#scopes")
            .await
            .contains("Read and update your contacts")
    );
    shot(&c, "consent").await;
    click(&c, "#approve").await;
    let code = text(&c, "#code").await;
    assert_eq!(text(&c, "#state").await, "xyz-state");
    shot(&c, "debug-callback").await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", s.client_id, s.client_secret)
        )
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &debug),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims(r.body["access_token"].as_str().unwrap())["sub"],
        s.user_id.as_str()
    );

    // Again through the partner dialect: consent is remembered, the browser goes straight back.
    c.goto(&authorize_url(&t.base, "partner", &s.client_id, &debug))
        .await
        .unwrap();
    let code = text(&c, "#code").await;
    let body = json!({"grant_type": "authorization_code", "authorization_code_data":
        {"client_id": s.client_id, "code": code, "redirect_uri": debug, "code_verifier": VERIFIER}});
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh = r.data("refresh_token");

    // The connected applications page, and revoking from it.
    c.goto(&format!("{}/oauth/grants", t.base)).await.unwrap();
    assert!(text(&c, "#grants").await.contains("Acme CRM"));
    shot(&c, "grants").await;
    click(&c, "#grants button").await;
    assert!(text(&c, "#notice").await.contains("Access removed"));
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &refresh_body(&refresh),
        )
        .await;
    assert_eq!(r.code(), "OAUTH_MISSING_GRANT");

    // Deny (consent is asked again after the revocation).
    c.goto(&authorize_url(&t.base, "standard", &s.client_id, &debug))
        .await
        .unwrap();
    click(&c, "#deny").await;
    assert_eq!(text(&c, "#error").await, "access_denied");

    // Sign out, then register a new account from the login page.
    c.goto(&format!("{}/oauth/grants", t.base)).await.unwrap();
    click(&c, "#logout").await;
    // Wait for the next page's own element: `h1` also exists on the page being left.
    text(&c, "#message").await;
    assert!(text(&c, "h1").await.contains("signed out"));
    shot(&c, "signed-out").await;
    c.goto(&authorize_url(&t.base, "partner", &s.client_id, &debug))
        .await
        .unwrap();
    click(&c, "#register-link").await;
    fill(&c, "#account_name", "Brand New Shop").await;
    fill(&c, "#email", "owner@brandnew.example").await;
    // 12 characters pass the browser's own check; the server still refuses a common password.
    fill(&c, "#password", "password1234").await;
    click(&c, "#register-form button").await;
    assert!(text(&c, "#error").await.contains("common password"));
    shot(&c, "register").await;
    fill(&c, "#password", "a-brand-new-secret").await;
    click(&c, "#register-form button").await;
    click(&c, "#approve").await;
    assert!(text(&c, "#code").await.starts_with("tac_"));

    // An unknown client gets an error page, never a redirect.
    c.goto(&authorize_url(&t.base, "standard", "tc_unknown", &debug))
        .await
        .unwrap();
    assert!(text(&c, "#message").await.contains("not registered"));
    shot(&c, "error").await;

    // The iframe rule: the registered origin may frame the pages, another client's may not.
    c.goto(&format!("{framer_origin}/frame/{framed_id}"))
        .await
        .unwrap();
    let frame = c.wait().for_element(Locator::Id("f")).await.unwrap();
    frame.enter_frame().await.unwrap();
    // The page shows (a cross-site frame over plain HTTP gets no SameSite=Lax cookie, so the
    // flow cannot bind to it and says so; that it is shown at all is the framing rule).
    assert!(
        c.wait().for_element(Locator::Css("main")).await.is_ok(),
        "the registered origin frames the pages"
    );
    c.enter_parent_frame().await.unwrap();
    shot(&c, "framed").await;
    c.goto(&format!("{framer_origin}/frame/{unframed_id}"))
        .await
        .unwrap();
    let frame = c.wait().for_element(Locator::Id("f")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    frame.enter_frame().await.unwrap();
    assert!(
        c.find(Locator::Css("main")).await.is_err(),
        "a client without frame origins cannot be framed"
    );
    c.close().await.unwrap();
}
