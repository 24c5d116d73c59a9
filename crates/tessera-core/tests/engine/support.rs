//! A world to test the engine in: one SQLite store in a temporary file, an engine started at a
//! fixed time, a partner, and helpers to add clients, accounts and users.

use std::sync::Arc;

use tessera_core::grants::{GrantRequest, Issued};
use tessera_core::jwt::Claims;
use tessera_core::master::MasterKey;
use tessera_core::model::{Account, Client, Partner, Role, User};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::password::Passwords;
use tessera_core::scope::ScopeSet;
use tessera_core::store::Store;
use tessera_core::{Caller, Engine, EngineConfig, EngineError};

/// The fixed "now" every test starts from (2027-01-15).
pub const T0: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://as.test";
pub const PASSWORD: &str = "violet-harbor-engine-42";

pub struct World {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub partner: Partner,
    _dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        World::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut EngineConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("engine.db").display());
        let store = tessera_store::open(&url, &tessera_store::Options::default())
            .await
            .unwrap();
        ops::add_scopes(
            store.as_ref(),
            &operator(),
            &ScopeSet::from_names(["crm", "transport", "billing"]),
            None,
            T0,
        )
        .await
        .unwrap();
        let partner = new_partner(store.as_ref(), "crm transport").await;
        let mut config = EngineConfig::new(ISSUER);
        config.token_rate_limit = 0;
        adjust(&mut config);
        let engine = Engine::start(Arc::clone(&store), config, MasterKey::generate(), T0)
            .await
            .unwrap();
        World {
            engine,
            store,
            partner,
            _dir: dir,
        }
    }

    /// The world's partner, as the partner dialect authenticates it.
    pub fn partner_caller(&self) -> Caller {
        Caller::Partner(Arc::new(self.partner.clone()))
    }

    /// Another partner of the same server.
    pub async fn other_partner(&self) -> Partner {
        new_partner(self.store.as_ref(), "crm transport").await
    }

    /// A registered client of the world's partner, authenticated as the standard dialect does.
    pub async fn client(&self, grants: &[&str]) -> (Caller, Arc<Client>, String) {
        self.client_of(&self.partner, grants).await
    }

    pub async fn client_of(
        &self,
        partner: &Partner,
        grants: &[&str],
    ) -> (Caller, Arc<Client>, String) {
        let made = ops::create_client(
            self.store.as_ref(),
            &operator(),
            &ops::NewClient::try_from(ops::CreateClient {
                partner_id: partner.id.clone(),
                name: "Test app".into(),
                grant_types: grants.iter().map(|g| g.to_string()).collect(),
                scopes: "crm transport".into(),
                redirect_uris: vec!["https://app.test/cb".into()],
                frame_origins: Vec::new(),
                dev: false,
                pkce_plain: false,
                require_par: false,
                allow_registration: false,
            })
            .unwrap(),
            T0,
        )
        .await
        .unwrap();
        let client = self
            .store
            .client_by_id(&made.client_id)
            .await
            .unwrap()
            .unwrap();
        let caller = self
            .engine
            .authenticate_client(&client.id, &made.client_secret, T0)
            .await
            .unwrap();
        (caller, Arc::new(client), made.client_secret)
    }

    pub async fn account(&self) -> Account {
        self.engine
            .create_account(&self.partner, "Acme Ltd", None, T0)
            .await
            .unwrap()
    }

    pub async fn user(&self, role: Role, account: Option<&Account>) -> User {
        let made = ops::create_user(
            self.store.as_ref(),
            &Passwords::new(),
            &operator(),
            &ops::CreateUser {
                partner_id: self.partner.id.clone(),
                username: format!("{}-{}@buyer.test", role.as_str(), uuid_suffix()),
                password: PASSWORD.into(),
                role,
                account_id: account.map(|a| a.id.clone()),
            },
            T0,
        )
        .await
        .unwrap();
        self.store.user_by_id(&made.user_id).await.unwrap().unwrap()
    }

    pub async fn grant(
        &self,
        caller: &Caller,
        request: GrantRequest,
        now: i64,
    ) -> Result<Issued, EngineError> {
        self.engine.grant(caller, request, now).await
    }

    /// The claims of a token this engine issued, verified at `now`.
    pub fn claims(&self, token: &str, now: i64) -> Claims {
        self.engine.verify_token(token, now).unwrap()
    }
}

async fn new_partner(store: &dyn Store, scopes: &str) -> Partner {
    let suffix = uuid_suffix();
    let made = ops::create_partner(
        store,
        &Passwords::new(),
        &operator(),
        &ops::NewPartner {
            name: "Partner".into(),
            email: format!("p-{suffix}@partner.test"),
            password: PASSWORD.into(),
            scopes: ScopeSet::parse(scopes).unwrap(),
            org_code: None,
        },
        T0,
    )
    .await
    .unwrap();
    store
        .partner_by_id(&made.partner_id)
        .await
        .unwrap()
        .unwrap()
}

/// Who the tests' changes are made by, in the audit trail.
pub fn operator() -> Operator {
    Operator("test".into())
}

pub fn uuid_suffix() -> String {
    tessera_core::secret::new_id()[24..].to_string()
}

/// Unwrap the error of a refused grant.
pub fn refused(result: Result<Issued, EngineError>) -> EngineError {
    match result {
        Ok(issued) => panic!("expected a refusal, got {issued:?}"),
        Err(e) => e,
    }
}

/// The `kid` in a JWT's header.
pub fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}
