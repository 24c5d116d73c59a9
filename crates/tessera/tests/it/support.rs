//! The test kit: a real Tessera server on port 0 over a fresh SQLite file, partners made through
//! the same admin code the CLI uses, and every log line of the test binary captured in memory so
//! that tests can check what reached the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use tessera_client::{Credentials, PartnerClient};
use tessera_core::master::MasterKey;
use tessera_core::model::{Client, Role, User};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::scope::ScopeSet;
use tessera_core::store::Store;
use tessera_core::{EngineConfig, unix_now};
use tessera_server::{RunningServer, ServerConfig};

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// The issuer every node of a multi-node test shares.
pub const SHARED_ISSUER: &str = "https://auth.tessera.test";

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the capturing subscriber once, at DEBUG for Tessera's crates.
fn init_logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(Arc::clone(&buf));
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,hyper=info,hyper_util=info,reqwest=info,h2=info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
    .clone()
}

/// Everything logged so far by any test in this binary.
pub fn logs() -> String {
    String::from_utf8_lossy(&init_logs().lock().unwrap()).into_owned()
}

/// How a test server is started, beyond its database, engine settings and master key.
#[derive(Default)]
struct How {
    tls: Option<tessera_server::tls::TlsFiles>,
    options: tessera_store::Options,
    issuer: Option<String>,
    limits: tessera_server::conn::ConnectionLimits,
    admin: tessera_server::ServedAt,
    proxies: tessera_server::forwarded::TrustedProxies,
}

pub struct TestServer {
    pub base: String,
    pub server: Option<RunningServer>,
    pub store: Arc<dyn Store>,
    /// Keeps the database directory alive as long as the server.
    _dir: tempfile::TempDir,
    master_hex: String,
    pub http: reqwest::Client,
}

#[derive(Clone)]
pub struct TestPartner {
    pub id: String,
    pub email: String,
    pub password: String,
    pub org_code: String,
}

impl TestPartner {
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.email, self.password))
        )
    }
}

/// Test defaults: no rate limit unless a test asks for one.
pub fn config() -> EngineConfig {
    let mut c = EngineConfig::new(String::new());
    c.audience = String::new();
    c.token_rate_limit = 0;
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(config()).await
    }

    pub async fn start_with(engine: EngineConfig) -> TestServer {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("t.db").display());
        Self::start_on(dir, db_url, engine, MasterKey::generate()).await
    }

    pub async fn start_on(
        dir: tempfile::TempDir,
        db_url: String,
        engine: EngineConfig,
        master: MasterKey,
    ) -> TestServer {
        Self::start_full(dir, db_url, engine, master, How::default()).await
    }

    /// A node on a shared database (PostgreSQL), with the given store options. All nodes share
    /// one issuer, as nodes behind one load balancer must.
    pub async fn start_node(
        db_url: &str,
        master: &MasterKey,
        options: tessera_store::Options,
    ) -> TestServer {
        Self::start_node_with(db_url, master, options, config()).await
    }

    /// A node as [`TestServer::start_node`], with engine settings of its own.
    pub async fn start_node_with(
        db_url: &str,
        master: &MasterKey,
        options: tessera_store::Options,
        engine: EngineConfig,
    ) -> TestServer {
        let master = MasterKey::parse(&master.to_hex()).unwrap();
        Self::start_full(
            tempfile::tempdir().unwrap(),
            db_url.to_string(),
            engine,
            master,
            How {
                options,
                issuer: Some(SHARED_ISSUER.to_string()),
                ..How::default()
            },
        )
        .await
    }

    pub async fn start_tls(
        dir: tempfile::TempDir,
        db_url: String,
        engine: EngineConfig,
        master: MasterKey,
        tls: tessera_server::tls::TlsFiles,
    ) -> TestServer {
        Self::start_full(
            dir,
            db_url,
            engine,
            master,
            How {
                tls: Some(tls),
                ..How::default()
            },
        )
        .await
    }

    /// A server whose admin API is where `admin` says.
    pub async fn start_with_admin(admin: tessera_server::ServedAt) -> TestServer {
        Self::start_how(How {
            admin,
            ..How::default()
        })
        .await
    }

    /// A server behind `proxies`, with `engine`'s settings.
    pub async fn start_behind(
        proxies: tessera_server::forwarded::TrustedProxies,
        engine: EngineConfig,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("t.db").display());
        let how = How {
            proxies,
            ..How::default()
        };
        Self::start_full(dir, db, engine, MasterKey::generate(), how).await
    }

    /// A server over TLS with the given connection limits, and its admin API where `admin`
    /// says.
    pub async fn start_tls_with(
        tls: tessera_server::tls::TlsFiles,
        limits: tessera_server::conn::ConnectionLimits,
        admin: tessera_server::ServedAt,
    ) -> TestServer {
        Self::start_how(How {
            tls: Some(tls),
            limits,
            admin,
            ..How::default()
        })
        .await
    }

    /// A server on a fresh SQLite file, started as `how` says.
    async fn start_how(how: How) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("t.db").display());
        Self::start_full(dir, db, config(), MasterKey::generate(), how).await
    }

    /// A server with the given connection limits (timeouts, cap).
    pub async fn start_with_limits(limits: tessera_server::conn::ConnectionLimits) -> TestServer {
        Self::start_how(How {
            limits,
            ..How::default()
        })
        .await
    }

    async fn start_full(
        dir: tempfile::TempDir,
        db_url: String,
        engine: EngineConfig,
        master: MasterKey,
        how: How,
    ) -> TestServer {
        let How {
            tls,
            options,
            issuer,
            limits,
            admin,
            proxies,
        } = how;
        init_logs();
        let master_hex = master.to_hex().to_string();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let store = tessera_store::open(&db_url, &options).await.unwrap();
        if store.list_scopes().await.unwrap().is_empty() {
            let now = unix_now();
            let all = ScopeSet::from_names(["transport", "crm", "WRITE", "billing"]);
            ops::add_scopes(store.as_ref(), &operator(), &all, None, now)
                .await
                .unwrap();
            let described = Some("Read and update your contacts");
            let crm = ScopeSet::from_names(["crm"]);
            ops::add_scopes(store.as_ref(), &operator(), &crm, described, now)
                .await
                .unwrap();
        }
        let server = tessera_server::start(
            Arc::clone(&store),
            master,
            ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                issuer,
                engine,
                tls,
                limits,
                trusted_proxies: proxies,
                metrics: tessera_server::ServedAt::Main,
                admin,
            },
        )
        .await
        .unwrap();
        TestServer {
            master_hex,
            base: format!("{scheme}://{}", server.addr),
            server: Some(server),
            store,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// The master key the server's signing keys are sealed with.
    pub fn master(&self) -> MasterKey {
        MasterKey::parse(&self.master_hex).unwrap()
    }

    pub fn engine(&self) -> &tessera_core::Engine {
        &self.server.as_ref().unwrap().engine
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A partner allowed `transport crm WRITE` unless told otherwise.
    pub async fn partner(&self) -> TestPartner {
        self.partner_with_scopes("transport crm WRITE").await
    }

    pub async fn partner_with_scopes(&self, scopes: &str) -> TestPartner {
        let n = uuid_suffix();
        let email = format!("partner-{n}@example.com");
        let password = format!("correct-horse-{n}");
        let p = ops::create_partner(
            self.store.as_ref(),
            &tessera_core::password::Passwords::new(),
            &operator(),
            &ops::NewPartner {
                name: "Test Partner".into(),
                email: email.clone(),
                password: password.clone(),
                scopes: ScopeSet::parse(scopes).unwrap(),
                org_code: None,
            },
            unix_now(),
        )
        .await
        .unwrap();
        TestPartner {
            id: p.partner_id,
            email,
            password,
            org_code: p.org_code,
        }
    }

    pub fn client(&self, p: &TestPartner) -> PartnerClient {
        PartnerClient::new(&self.base, Credentials::basic(&p.email, &p.password))
    }

    /// POST JSON with an Authorization header; returns status, headers and parsed body.
    pub async fn post(&self, path: &str, auth: Option<&str>, body: &str) -> Resp {
        let mut req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, auth: Option<&str>) -> Resp {
        let mut req = self.http.get(self.url(path));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    /// Wait for the change feed (polled every 250 ms) to reach this node.
    pub async fn settle(&self) {
        self.engine().sync(unix_now()).await.unwrap();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// A response, read.
pub async fn resp(r: reqwest::Response) -> Resp {
    Resp::from(r).await
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }

    pub fn data(&self, field: &str) -> String {
        self.body["data"][field]
            .as_str()
            .unwrap_or_else(|| panic!("no data.{field} in {}", self.body))
            .to_string()
    }
}

pub fn uuid_suffix() -> String {
    URL_SAFE_NO_PAD.encode(tessera_core::secret::random_bytes::<6>())
}

/// The claims of a JWT, without verifying it (tests verify through JWKS elsewhere).
pub fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn machine_token_body(scope: &str) -> String {
    serde_json::json!({"grant_type": "client_credentials", "client_credentials_data": {"scope": scope}})
        .to_string()
}

pub fn exchange_body(machine: &str, account: &str, scope: &str) -> String {
    serde_json::json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "token_exchange_data": {
            "subject_token": machine,
            "subject_token_type": "urn:wazzup:oauth:token-type:machine_token",
            "requested_subject": account,
            "scope": scope
        }
    })
    .to_string()
}

pub fn refresh_body(rt: &str) -> String {
    serde_json::json!({"grant_type": "refresh_token", "refresh_token_data": {"refresh_token": rt}})
        .to_string()
}

/// A partner with a registered client and an admin user, as seed 002's onboarding hands out.
pub struct Onboarded {
    pub partner: TestPartner,
    pub client_id: String,
    pub client_secret: String,
    pub admin_email: String,
    pub admin_password: String,
}

impl Onboarded {
    /// `-u client_id:client_secret`
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret))
        )
    }
}

impl TestServer {
    /// Onboard a partner for the standard dialect with a client allowed `grants`.
    pub async fn onboard(&self, grants: &[&str]) -> Onboarded {
        let partner = self.partner_with_scopes("WRITE crm transport").await;
        let (client_id, client_secret) = self.standard_client(&partner.id, grants).await;
        let admin_email = format!("owner-{}@org.example", uuid_suffix());
        let admin_password = format!("owner-secret-{}", uuid_suffix());
        let store = self.store.as_ref();
        create_user(
            store,
            &partner.id,
            &admin_email,
            &admin_password,
            Role::Admin,
            None,
        )
        .await;
        Onboarded {
            partner,
            client_id,
            client_secret,
            admin_email,
            admin_password,
        }
    }

    /// A client of `partner_id` for the standard dialect (scopes `WRITE crm`), allowed
    /// `grants`: its id and secret.
    pub async fn standard_client(&self, partner_id: &str, grants: &[&str]) -> (String, String) {
        let input = client_input(partner_id, "Escrow App", grants, "WRITE crm");
        let (client, secret) = create_client(self.store.as_ref(), input).await;
        (client.id, secret)
    }

    /// POST a form body with an optional Authorization header.
    pub async fn form(&self, path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.form_raw(path, auth, &body).await
    }

    pub async fn form_raw(&self, path: &str, auth: Option<&str>, body: &str) -> Resp {
        let mut req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn app_token(&self, o: &Onboarded) -> String {
        let r = self
            .form(
                "/oauth/token",
                Some(&o.basic()),
                &[("grant_type", "client_credentials"), ("scope", "WRITE")],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
}

impl Resp {
    /// `error` of a standard-dialect error body.
    pub fn oauth_error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<none>")
    }
}

/// Run the real `tessera serve` binary on loopback port 0 with `args` (after `serve --listen
/// 127.0.0.1:0 --token-rate-limit 0`) and the master key `master_hex`; the child and the
/// address it announced. Its log is drained in the background.
pub fn spawn_serve(args: &[&str], master_hex: &str) -> (std::process::Child, String) {
    spawn_serve_at("127.0.0.1:0", args, master_hex)
}

/// [`spawn_serve`] on another listen address.
pub fn spawn_serve_at(
    listen: &str,
    args: &[&str],
    master_hex: &str,
) -> (std::process::Child, String) {
    spawn_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_tessera")),
        listen,
        args,
        master_hex,
    )
}

/// Run a CLI command of `binary` (this build's, or the previous release's) on `db` with the
/// master key `master_hex` and `stdin` as its input: its JSON output, or a panic with its
/// stderr.
pub fn cli_json(
    binary: &std::path::Path,
    db: &str,
    args: &[&str],
    stdin: &str,
    master_hex: &str,
) -> Value {
    use std::process::{Command, Stdio};
    let mut child = Command::new(binary)
        .args(args)
        .args(["--database", db])
        .env("TESSERA_MASTER_KEY", master_hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A spawned server that is killed when it goes out of scope, so that a failing test leaves no
/// process behind.
pub struct Spawned(pub std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// [`spawn_serve_at`] with another build of `tessera` (the previous release, say).
pub fn spawn_binary(
    binary: &std::path::Path,
    listen: &str,
    args: &[&str],
    master_hex: &str,
) -> (std::process::Child, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(binary)
        .args(["serve", "--listen", listen, "--token-rate-limit", "0"])
        .args(args)
        .env("TESSERA_MASTER_KEY", master_hex)
        .env("TESSERA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("tessera listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Poll `done` until it holds, for at most one second (the coherence promise: a change made on
/// one node, or by the CLI, is seen by every node within a second); `what` names the change.
pub async fn within_one_second(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "{what}: not within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The PostgreSQL server the PostgreSQL tests use (`TESSERA_TEST_POSTGRES_URL`, a role that
/// may create databases). Without it a test says "skipped" and returns, except under
/// `CI=true` (`.ci/run` sets it), where a missing server fails the test instead of letting it
/// pass without running.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("TESSERA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{test}: CI=true but TESSERA_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("skipped {test}: TESSERA_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Who the tests' own changes are made by, in the audit trail.
pub fn operator() -> Operator {
    Operator("test".into())
}

/// A user made through the operator's operations, as the store keeps it.
pub async fn create_user(
    store: &dyn Store,
    partner_id: &str,
    username: &str,
    password: &str,
    role: Role,
    account_id: Option<&str>,
) -> User {
    let input = ops::CreateUser {
        partner_id: partner_id.into(),
        username: username.into(),
        password: password.into(),
        role,
        account_id: account_id.map(str::to_string),
    };
    let passwords = tessera_core::password::Passwords::new();
    let made = ops::create_user(store, &passwords, &operator(), &input, unix_now())
        .await
        .unwrap();
    store.user_by_id(&made.user_id).await.unwrap().unwrap()
}

/// What a client is made from: `grants` and `scopes`, nothing else allowed.
pub fn client_input(
    partner_id: &str,
    name: &str,
    grants: &[&str],
    scopes: &str,
) -> ops::CreateClient {
    ops::CreateClient {
        partner_id: partner_id.into(),
        name: name.into(),
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scopes: scopes.into(),
        redirect_uris: Vec::new(),
        frame_origins: Vec::new(),
        dev: false,
        pkce_plain: false,
        require_par: false,
        allow_registration: false,
    }
}

/// A client made through the operator's operations: the stored record and its secret.
pub async fn create_client(store: &dyn Store, input: ops::CreateClient) -> (Client, String) {
    let input = ops::NewClient::try_from(input).unwrap();
    let made = ops::create_client(store, &operator(), &input, unix_now())
        .await
        .unwrap();
    let client = store.client_by_id(&made.client_id).await.unwrap().unwrap();
    (client, made.client_secret)
}
