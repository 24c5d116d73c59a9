//! `tessera serve --dev`: on an empty database, create a demo partner, account, OAuth client,
//! admin user and end customer with random secrets, and print them once with ready-to-paste curl
//! commands for seed 000's flow and an authorization URL to open in a browser. On a database that already has them, reuse them (their secrets were shown when
//! they were created and are stored only as hashes).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_core::model::{GrantType, Role};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::random_bytes;
use tessera_core::store::Store;
use tessera_core::unix_now;

pub const DEMO_EMAIL: &str = "demo-partner@tessera.example";
const DEMO_ADMIN: &str = "demo-admin@tessera.example";
const DEMO_CUSTOMER: &str = "demo-customer@tessera.example";

pub struct Demo {
    pub partner_id: String,
    pub account_id: String,
    /// Present only when the demo data was created by this run.
    pub secrets: Option<DemoSecrets>,
}

pub struct DemoSecrets {
    pub partner_password: String,
    pub client_id: String,
    pub client_secret: String,
    pub admin_password: String,
    /// The end customer who can sign in on the login page (an admin cannot).
    pub customer_password: String,
}

fn random_password() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

pub async fn ensure_demo_data(store: &dyn Store) -> anyhow::Result<Demo> {
    if let Some(p) = store.partner_by_email(DEMO_EMAIL).await? {
        let accounts = store.list_accounts(&p.id, None, 1).await?;
        return Ok(Demo {
            partner_id: p.id,
            account_id: accounts.first().map(|a| a.id.clone()).unwrap_or_default(),
            secrets: None,
        });
    }
    let now = unix_now();
    let passwords = tessera_core::password::Passwords::new();
    // Made through the operator's operations, audited like any other change.
    let by = &Operator("dev:demo-data".into());
    for (name, description) in [
        ("transport", "Connect and manage your messaging channels"),
        ("crm", "Read and update your contacts and deals"),
        ("WRITE", "Create contracts and payments for you"),
    ] {
        let name = ScopeSet::from_names([name]);
        ops::add_scopes(store, by, &name, Some(description), now).await?;
    }
    let partner_password = random_password();
    let partner = ops::create_partner(
        store,
        &passwords,
        by,
        &ops::NewPartner {
            name: "Demo Partner".into(),
            email: DEMO_EMAIL.into(),
            password: partner_password.clone(),
            scopes: ScopeSet::from_names(["transport", "crm", "WRITE"]),
            org_code: None,
        },
        now,
    )
    .await?;
    let account = tessera_core::model::Account {
        id: numeric_account_id(),
        partner_id: partner.partner_id.clone(),
        name: "Demo Customer".into(),
        external_id: Some("demo-1".into()),
        created_at: now,
    };
    store.insert_account(&account).await?;
    let client = ops::create_client(
        store,
        by,
        &ops::NewClient {
            partner_id: partner.partner_id.clone(),
            name: "Demo App".into(),
            grant_types: GrantType::ALL.to_vec(),
            scopes: ScopeSet::from_names(["WRITE", "transport", "crm"]),
            redirect_uris: vec!["http://127.0.0.1:9999/callback".into()],
            frame_origins: Vec::new(),
            dev: true,
            pkce_plain: false,
            require_par: false,
            allow_registration: true,
        },
        now,
    )
    .await?;
    let user = |username: &str, role| ops::CreateUser {
        partner_id: partner.partner_id.clone(),
        username: username.into(),
        password: random_password(),
        role,
        account_id: None,
    };
    let admin = user(DEMO_ADMIN, Role::Admin);
    let customer = user(DEMO_CUSTOMER, Role::Customer);
    for u in [&admin, &customer] {
        ops::create_user(store, &passwords, by, u, now).await?;
    }
    Ok(Demo {
        partner_id: partner.partner_id,
        account_id: account.id,
        secrets: Some(DemoSecrets {
            customer_password: customer.password,
            partner_password,
            client_id: client.client_id,
            client_secret: client.client_secret,
            admin_password: admin.password,
        }),
    })
}

fn numeric_account_id() -> String {
    // Accounts made by the API get UUIDv7 ids; the demo account gets a numeric one, like seed
    // 000's example, to show that ids are opaque strings.
    let n = u64::from_be_bytes(random_bytes::<8>()) % 90_000_000 + 10_000_000;
    n.to_string()
}

/// Print the demo credentials (once) and the seed 000 requests, on stdout.
pub fn print_instructions(demo: &Demo, base: &str) {
    let Some(s) = &demo.secrets else {
        println!(
            "Demo data already exists (partner {DEMO_EMAIL}, partner_id {}, account_id {}).\n\
             Its secrets were printed when it was created and are stored only as hashes;\n\
             delete the database (and its .key file) to start over.",
            demo.partner_id, demo.account_id
        );
        return;
    };
    let basic = format!("{DEMO_EMAIL}:{}", s.partner_password);
    let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let challenge = tessera_core::pkce::s256_challenge(&verifier);
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<9>());
    let callback = format!("{base}{}", tessera_server::pages::DEBUG_CALLBACK_PATH);
    let authorize = format!(
        "{base}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}\
         &scope=crm&state={state}&code_challenge={challenge}&code_challenge_method=S256",
        s.client_id,
        url::form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
    );
    println!(
        r#"
Demo data created. These secrets are shown once:
  partner email     {DEMO_EMAIL}
  partner password  {pw}
  partner_id        {pid}
  account_id        {aid}
  client_id         {cid}
  client_secret     {cs}
  admin user        {DEMO_ADMIN} / {apw}
  end customer      {DEMO_CUSTOMER} / {cpw}

Seed 000, step 1: create an end-customer account
  curl -s {base}/v2/accounts -u '{basic}' -H 'Content-Type: application/json' \
    -d '{{"name": "Acme Ltd", "external_id": "acme-1"}}'

Step 2: get a machine token
  curl -s {base}/v2/oauth/token -u '{basic}' -H 'Content-Type: application/json' \
    -d '{{"grant_type": "client_credentials", "client_credentials_data": {{"scope": "transport,crm"}}}}'

Step 3: exchange it for the account's tokens (put the machine token in MT)
  curl -s {base}/v2/oauth/token -u '{basic}' -H 'Content-Type: application/json' \
    -d '{{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "token_exchange_data": {{"subject_token": "'"$MT"'", "subject_token_type": "urn:wazzup:oauth:token-type:machine_token", "requested_subject": "{aid}", "scope": "transport,crm"}}}}'

The authorization-code flow: open this URL, sign in as the end customer and approve
  {authorize}
The page you land on shows the code; exchange it (put it in CODE):
  curl -s {base}/oauth/token -u '{cid}:{cs}' -d grant_type=authorization_code \
    -d "code=$CODE" --data-urlencode 'redirect_uri={callback}' -d code_verifier={verifier}

Public keys: {base}/.well-known/jwks.json
"#,
        cpw = s.customer_password,
        pw = s.partner_password,
        pid = demo.partner_id,
        aid = demo.account_id,
        cid = s.client_id,
        cs = s.client_secret,
        apw = s.admin_password,
    );
}
