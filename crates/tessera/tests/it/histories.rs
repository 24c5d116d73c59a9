//! The history checker for the token lifecycle (SECURITY.md, I1–I6): many workers send random
//! operations through the real server (refresh, a lossless retry, reuse of an old token, a code
//! redeemed once or twice at once, grant withdrawal, RFC 7009 revocation, introspection, janitor
//! runs with a shifted clock, password resets, signed-in browsers asking `/authorize` again) to one SQLite node or three PostgreSQL nodes; every request and
//! answer is recorded with its times, and the history is checked afterwards. A check only
//! counts what a client could see: an operation that *began after* another *returned*.
//!
//! The suite runs a short history (`TESSERA_HISTORY_OPS`, 5,000 by default) on each backend;
//! `bench/histories` runs long ones on a release build.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tessera_core::master::MasterKey;
use tessera_core::secret::SecretDigest;
use tessera_core::unix_now;
use tokio::sync::{Mutex, RwLock};

use crate::authcode::{Agent, REDIRECT, Setup, VERIFIER, authorize_path, setup};
use crate::support::{Resp, TestServer, claims, config};

/// The reuse grace the nodes run with: short, so that a history sees reuse detection.
const GRACE: i64 = 1;
/// How soon every node must refuse an access token after its revocation returned (I1).
const PROPAGATION: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
enum Answer {
    /// New tokens: the access token's family (`sid`) and the refresh token.
    Issued {
        sid: String,
        at: String,
        rt: String,
    },
    /// Refused, with the error description.
    Refused(String),
    /// Introspection.
    Active(bool),
    Done,
}

#[derive(Debug, Clone)]
enum Op {
    /// A code of grant epoch `epoch` (`code`: the code's number), presented at the token endpoint.
    Redeem {
        code: u64,
        epoch: u64,
    },
    Refresh {
        rt: String,
    },
    Introspect {
        at: String,
    },
    /// The user's grant withdrawn: every family of epochs up to `epoch`.
    RevokeGrant {
        epoch: u64,
    },
    /// RFC 7009 revocation of a refresh token: its family.
    RevokeToken {
        rt: String,
    },
    Janitor {
        #[allow(dead_code)] // for the history's Debug output
        shift: i64,
    },
    /// The user's password replaced: version `version` ends.
    ResetPassword {
        version: u64,
    },
    /// A browser signed in under password version `version` asks `/authorize` again; the
    /// answer is whether it completed without a sign-in.
    Probe {
        version: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Event {
    op: Op,
    node: usize,
    start: Instant,
    end: Instant,
    answer: Answer,
}

/// What the workers share: the nodes, the setup, the pools they draw tokens from, the history.
struct World {
    nodes: Vec<TestServer>,
    setup: Setup,
    basic: String,
    /// Grant epoch: bumped by each withdrawal. `/authorize` holds it shared, a withdrawal
    /// exclusively, so that each code's grant is known.
    epoch: RwLock<u64>,
    codes: AtomicU64,
    live: Mutex<Vec<String>>,
    access: Mutex<Vec<String>>,
    history: Mutex<Vec<Event>>,
    ops: AtomicUsize,
    /// Every refresh token seen, for the live-head count at the end.
    seen: Mutex<HashSet<String>>,
    /// The user's password and its version: sign-ins hold it shared, a reset exclusively.
    password: RwLock<(u64, String)>,
    /// Browsers that signed in, with the password version they signed in under.
    browsers: Mutex<Vec<(u64, Agent)>>,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

impl World {
    async fn record(&self, op: Op, node: usize, start: Instant, answer: Answer) {
        if let Answer::Issued { at, rt, .. } = &answer {
            self.live.lock().await.push(rt.clone());
            self.seen.lock().await.insert(rt.clone());
            let mut access = self.access.lock().await;
            access.push(at.clone());
            if access.len() > 64 {
                access.remove(0);
            }
        }
        self.history.lock().await.push(Event {
            op,
            node,
            start,
            end: Instant::now(),
            answer,
        });
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    async fn token(&self, node: usize, pairs: &[(&str, &str)]) -> Answer {
        let r = self.nodes[node]
            .form("/oauth/token", Some(&self.basic), pairs)
            .await;
        answer_of(&r)
    }

    /// A fresh code (signing in, and consenting again after a withdrawal), with its epoch; the
    /// browser that signed in joins the pool the probes draw from.
    async fn code(&self, node: usize) -> (String, u64) {
        let epoch = self.epoch.read().await;
        let password = self.password.read().await;
        let mut agent = Agent::new(&self.nodes[node].url(""));
        let path = authorize_path("standard", &self.setup.client_id, &[]);
        let setup = Setup {
            partner: self.setup.partner.clone(),
            client_id: self.setup.client_id.clone(),
            client_secret: self.setup.client_secret.clone(),
            user_email: self.setup.user_email.clone(),
            user_password: password.1.clone(),
            user_id: self.setup.user_id.clone(),
            account_id: self.setup.account_id.clone(),
        };
        let q = crate::authcode::authorize(&mut agent, &setup, &path).await;
        let mut browsers = self.browsers.lock().await;
        if browsers.len() < 16 {
            browsers.push((password.0, agent));
        }
        (q["code"].clone(), *epoch)
    }

    async fn redeem(&self, node: usize, code: &str, number: u64, epoch: u64) {
        let start = Instant::now();
        let answer = self
            .token(
                node,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        self.record(
            Op::Redeem {
                code: number,
                epoch,
            },
            node,
            start,
            answer,
        )
        .await;
    }

    async fn refresh(&self, node: usize, rt: &str) -> Answer {
        let start = Instant::now();
        let answer = self
            .token(
                node,
                &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            )
            .await;
        self.record(Op::Refresh { rt: rt.into() }, node, start, answer.clone())
            .await;
        answer
    }

    async fn pick_live(&self, rng: &mut Rng) -> Option<String> {
        let mut live = self.live.lock().await;
        if live.is_empty() {
            return None;
        }
        let i = rng.below(live.len());
        Some(live.swap_remove(i))
    }
}

fn answer_of(r: &Resp) -> Answer {
    if r.status == 200 {
        let at = r.body["access_token"].as_str().unwrap().to_string();
        let sid = claims(&at)["sid"].as_str().unwrap().to_string();
        let rt = r.body["refresh_token"].as_str().unwrap().to_string();
        Answer::Issued { sid, at, rt }
    } else if r.status >= 500 {
        Answer::Refused(format!("server error {}: {}", r.status, r.body))
    } else {
        assert!(
            r.status == 400 || r.status == 401,
            "unexpected answer {} {}",
            r.status,
            r.body
        );
        Answer::Refused(
            r.body["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

async fn worker(world: Arc<World>, seed: u64, target: usize) {
    let mut rng = Rng(seed | 1);
    let n = world.nodes.len();
    while world.ops.load(Ordering::Relaxed) < target {
        let node = rng.below(n);
        let roll = rng.below(1000);
        match roll {
            // A code, redeemed once or, one time in three, on two nodes at once.
            0..=119 => {
                let (code, epoch) = world.code(node).await;
                let number = world.codes.fetch_add(1, Ordering::Relaxed);
                if rng.below(3) == 0 {
                    let other = rng.below(n);
                    tokio::join!(
                        world.redeem(node, &code, number, epoch),
                        world.redeem(other, &code, number, epoch)
                    );
                } else {
                    world.redeem(node, &code, number, epoch).await;
                }
            }
            // Refresh a live token; one time in five, twice at once (a lossless retry).
            120..=619 => {
                let Some(rt) = world.pick_live(&mut rng).await else {
                    continue;
                };
                if rng.below(5) == 0 {
                    let other = rng.below(n);
                    tokio::join!(world.refresh(node, &rt), world.refresh(other, &rt));
                } else {
                    world.refresh(node, &rt).await;
                }
            }
            // Reuse of a token rotated more than the grace ago: theft, the family goes.
            620..=669 => {
                let Some(rt) = world.pick_live(&mut rng).await else {
                    continue;
                };
                if let Answer::Issued { .. } = world.refresh(node, &rt).await {
                    tokio::time::sleep(Duration::from_millis(GRACE as u64 * 1000 + 300)).await;
                    world.refresh(rng.below(n), &rt).await;
                }
            }
            720..=919 => {
                let at = {
                    let access = world.access.lock().await;
                    if access.is_empty() {
                        continue;
                    }
                    access[rng.below(access.len())].clone()
                };
                let start = Instant::now();
                let r = world.nodes[node]
                    .form("/oauth/introspect", Some(&world.basic), &[("token", &at)])
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                let active = r.body["active"].as_bool().unwrap();
                world
                    .record(Op::Introspect { at }, node, start, Answer::Active(active))
                    .await;
            }
            920..=949 => {
                let Some(rt) = world.pick_live(&mut rng).await else {
                    continue;
                };
                let start = Instant::now();
                let r = world.nodes[node]
                    .form("/oauth/revoke", Some(&world.basic), &[("token", &rt)])
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                world
                    .record(Op::RevokeToken { rt }, node, start, Answer::Done)
                    .await;
            }
            951..=960 => {
                // A signed-in browser asks again: after a reset of its password it must sign in.
                let Some((version, mut agent)) = world.browsers.lock().await.pop() else {
                    continue;
                };
                let path = authorize_path("standard", &world.setup.client_id, &[]);
                let start = Instant::now();
                let r = agent.get(&path).await;
                let completed = r
                    .location
                    .as_deref()
                    .is_some_and(|l| l.starts_with(REDIRECT));
                world
                    .record(
                        Op::Probe { version },
                        node,
                        start,
                        Answer::Active(completed),
                    )
                    .await;
                if completed {
                    world.browsers.lock().await.push((version, agent));
                }
            }
            961..=962 => {
                let mut password = world.password.write().await;
                let next = format!("amber-harbor-lantern-{}", password.0 + 1);
                let start = Instant::now();
                tessera_core::operations::set_user_password(
                    world.nodes[node].store.as_ref(),
                    &tessera_core::password::Passwords::new(),
                    &crate::support::operator(),
                    &world.setup.partner.id,
                    &world.setup.user_email,
                    &next,
                    unix_now(),
                )
                .await
                .unwrap();
                world
                    .record(
                        Op::ResetPassword {
                            version: password.0,
                        },
                        node,
                        start,
                        Answer::Done,
                    )
                    .await;
                *password = (password.0 + 1, next);
                // Sign-ins after this use the new password: let every node's cache have it (the
                // feed brings it within a second anyway; the harness does not wait for that).
                for n in &world.nodes {
                    n.settle().await;
                }
            }
            950..=950 => {
                let mut epoch = world.epoch.write().await;
                let start = Instant::now();
                // Withdrawn already (no grant since the last withdrawal) is an answer too.
                match tessera_core::operations::revoke_grant(
                    world.nodes[node].store.as_ref(),
                    &crate::support::operator(),
                    &world.setup.user_id,
                    &world.setup.client_id,
                    unix_now(),
                )
                .await
                {
                    Ok(_) | Err(tessera_core::operations::AdminError::NotFound(_)) => {}
                    Err(e) => panic!("revoking the grant: {e}"),
                }
                world
                    .record(Op::RevokeGrant { epoch: *epoch }, node, start, Answer::Done)
                    .await;
                *epoch += 1;
            }
            _ => {
                // The janitor, now or with its clock ahead: past the reuse grace, and by two
                // minutes (not so far that it ends the sign-ins in progress).
                let shift = [0, GRACE + 1, 120][rng.below(3)];
                let start = Instant::now();
                world.nodes[node]
                    .engine()
                    .purge(unix_now() + shift, Duration::from_secs(5))
                    .await;
                world
                    .record(Op::Janitor { shift }, node, start, Answer::Done)
                    .await;
            }
        }
    }
}

/// The violations of I1–I6 in a history.
fn check(history: &[Event]) -> Vec<String> {
    // Each refresh token's family, from the answers that issued it.
    let mut family_of: HashMap<&str, &str> = HashMap::new();
    let mut code_family: HashMap<u64, &str> = HashMap::new();
    let mut epoch_of: HashMap<&str, u64> = HashMap::new();
    let mut access_family: HashMap<&str, &str> = HashMap::new();
    for e in history {
        if let Answer::Issued { sid, at, rt } = &e.answer {
            family_of.insert(rt, sid);
            access_family.insert(at, sid);
            if let Op::Redeem { code, epoch } = &e.op {
                code_family.insert(*code, sid);
                epoch_of.insert(sid, *epoch);
            }
        }
    }
    for e in history {
        if let (Op::Refresh { rt }, Answer::Issued { sid, .. }) = (&e.op, &e.answer)
            && let Some(parent) = family_of.get(rt.as_str())
        {
            assert_eq!(parent, sid, "a refresh stays in its family");
        }
    }
    // When each family was ended by something that returned: a withdrawal of its grant (I1),
    // reuse detection (I2), a second presentation of its code (I3), an RFC 7009 revocation.
    let mut ended: HashMap<String, (Instant, &'static str)> = HashMap::new();
    // A token issued by one of two successful refreshes of the same token may be the successor
    // the other replaced (revoked, then purged by the janitor): revoking it may revoke nothing
    // (RFC 7009 §2.2: an unknown token is not an error), so it proves nothing of its family.
    let mut issued_from: HashMap<&str, usize> = HashMap::new();
    for e in history {
        if let (Op::Refresh { rt }, Answer::Issued { .. }) = (&e.op, &e.answer) {
            *issued_from.entry(rt).or_default() += 1;
        }
    }
    let replaced: HashSet<&str> = history
        .iter()
        .filter_map(|e| match (&e.op, &e.answer) {
            (Op::Refresh { rt: from }, Answer::Issued { rt, .. })
                if issued_from.get(from.as_str()).is_some_and(|n| *n > 1) =>
            {
                Some(rt.as_str())
            }
            _ => None,
        })
        .collect();
    let mut ends: Vec<(String, Instant, &'static str)> = Vec::new();
    let mut withdrawn: Vec<(u64, Instant)> = Vec::new();
    for e in history {
        match (&e.op, &e.answer) {
            (Op::RevokeGrant { epoch }, _) => withdrawn.push((*epoch, e.end)),
            (Op::RevokeToken { rt }, _) if !replaced.contains(rt.as_str()) => {
                if let Some(sid) = family_of.get(rt.as_str()) {
                    ends.push((sid.to_string(), e.end, "RFC 7009 revocation"));
                }
            }
            (Op::Refresh { rt }, Answer::Refused(why)) if why.contains("used twice") => {
                if let Some(sid) = family_of.get(rt.as_str()) {
                    ends.push((sid.to_string(), e.end, "I2 reuse detection"));
                }
            }
            (Op::Redeem { code, .. }, Answer::Refused(why)) if why.contains("already used") => {
                if let Some(sid) = code_family.get(code) {
                    ends.push((sid.to_string(), e.end, "I3 code presented twice"));
                }
            }
            _ => {}
        }
    }
    for (sid, epoch) in &epoch_of {
        if let Some((_, at)) = withdrawn.iter().find(|(k, _)| k >= epoch) {
            ends.push((sid.to_string(), *at, "I1 grant withdrawn"));
        }
    }
    for (sid, at, why) in &ends {
        let entry = ended.entry(sid.clone()).or_insert((*at, why));
        if *at < entry.0 {
            *entry = (*at, why);
        }
    }
    let mut violations = Vec::new();
    for e in history {
        match (&e.op, &e.answer) {
            (Op::Refresh { rt }, Answer::Issued { sid, .. }) => {
                if let Some((at, why)) = ended.get(sid.as_str())
                    && e.start > *at
                {
                    violations.push(format!(
                        "refresh of {} succeeded {:?} after {why} returned (family {sid})",
                        short(rt),
                        e.start - *at
                    ));
                }
            }
            (Op::Redeem { epoch, .. }, Answer::Issued { .. }) => {
                if let Some((_, at)) = withdrawn.iter().find(|(k, _)| k >= epoch)
                    && e.start > *at
                {
                    violations.push(format!(
                        "a code of a withdrawn grant was redeemed {:?} after the withdrawal",
                        e.start - *at
                    ));
                }
            }
            (Op::Introspect { at: token }, Answer::Active(true)) => {
                if let Some(sid) = access_family.get(token.as_str())
                    && let Some((at, why)) = ended.get(*sid)
                    && e.start > *at + PROPAGATION
                {
                    violations.push(format!(
                        "an access token of family {} was active on node {} {:?} after {why} returned",
                        short(sid),
                        e.node,
                        e.start - *at
                    ));
                }
            }
            _ => {}
        }
    }
    // I6: a browser signed in under a password a reset replaced completes no `/authorize`.
    let resets: Vec<(u64, Instant)> = history
        .iter()
        .filter_map(|e| match e.op {
            Op::ResetPassword { version } => Some((version, e.end)),
            _ => None,
        })
        .collect();
    for e in history {
        if let (Op::Probe { version }, Answer::Active(true)) = (&e.op, &e.answer)
            && let Some((_, at)) = resets.iter().find(|(v, at)| v >= version && e.start > *at)
        {
            violations.push(format!(
                "I6: a browser signed in under password {version} completed /authorize {:?} after a reset returned",
                e.start - *at
            ));
        }
    }
    // A server error is never an answer to a race.
    for e in history {
        if let Answer::Refused(why) = &e.answer
            && why.starts_with("server error")
        {
            violations.push(format!("{:?} on node {}: {why}", e.op, e.node));
        }
    }
    // I5: a refresh token refused as revoked is never accepted again.
    let mut refused: HashMap<&str, Instant> = HashMap::new();
    for e in history {
        if let (Op::Refresh { rt }, Answer::Refused(why)) = (&e.op, &e.answer)
            && why.contains("revoked")
        {
            refused.entry(rt).or_insert(e.end);
        }
    }
    for e in history {
        if let (Op::Refresh { rt }, Answer::Issued { .. }) = (&e.op, &e.answer)
            && refused.get(rt.as_str()).is_some_and(|at| e.start > *at)
        {
            violations.push(format!(
                "I5: {} was accepted after it was refused as revoked",
                short(rt)
            ));
        }
    }
    violations
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// I4: each family has at most one live head, read from the store.
async fn live_heads(world: &World) -> Vec<String> {
    let mut heads: HashMap<String, usize> = HashMap::new();
    for rt in world.seen.lock().await.iter() {
        if let Some(t) = world.nodes[0]
            .store
            .refresh_token(&SecretDigest::of(rt))
            .await
            .unwrap()
            && t.rotated_at.is_none()
            && t.revoked_at.is_none()
        {
            *heads.entry(t.family_id).or_default() += 1;
        }
    }
    heads
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(f, n)| format!("I4: family {} has {n} live heads", short(&f)))
        .collect()
}

/// The world of a history on `nodes`: a partner, its client and a user.
async fn world(nodes: Vec<TestServer>) -> Arc<World> {
    let setup = setup(&nodes[0], &[], false).await;
    let setup_password = setup.user_password.clone();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", setup.client_id, setup.client_secret)
        )
    );
    Arc::new(World {
        nodes,
        setup,
        basic,
        epoch: RwLock::new(0),
        codes: AtomicU64::new(0),
        live: Mutex::new(Vec::new()),
        access: Mutex::new(Vec::new()),
        history: Mutex::new(Vec::new()),
        ops: AtomicUsize::new(0),
        seen: Mutex::new(HashSet::new()),
        password: RwLock::new((0, setup_password)),
        browsers: Mutex::new(Vec::new()),
    })
}

/// Run a history of about `ops` operations with `workers` workers; the history and the
/// violations found.
pub async fn run_history(
    nodes: Vec<TestServer>,
    ops: usize,
    workers: u64,
) -> (Vec<Event>, Vec<String>) {
    let world = world(nodes).await;
    let tasks: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker(Arc::clone(&world), 0x9E37_79B9 * (w + 1), ops)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let history = world.history.lock().await.clone();
    let mut violations = check(&history);
    violations.extend(live_heads(&world).await);
    (history, violations)
}

fn history_ops() -> usize {
    std::env::var("TESSERA_HISTORY_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// The suite runs beside a history on two cores: a generous database budget, so that a starved
/// machine shows up as slowness, not as a 503 the checker would count.
fn patient() -> tessera_store::Options {
    tessera_store::Options {
        timeout: Duration::from_secs(15),
        ..Default::default()
    }
}

fn engine_config() -> tessera_core::engine::EngineConfig {
    let mut c = config();
    c.refresh_reuse_grace = GRACE;
    // Every worker is one requester on loopback.
    c.flow_burst = 0;
    c
}

/// How many of each kind of operation, and of the answers that end a family, a history holds.
fn tally(history: &[Event]) -> String {
    let mut n: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in history {
        let kind = match (&e.op, &e.answer) {
            (Op::Redeem { .. }, Answer::Issued { .. }) => "codes redeemed",
            (Op::Redeem { .. }, _) => "codes refused",
            (Op::Refresh { .. }, Answer::Issued { .. }) => "refreshes",
            (Op::Refresh { .. }, Answer::Refused(w)) if w.contains("used twice") => {
                "reuse detections"
            }
            (Op::Refresh { .. }, _) => "refreshes refused",
            (Op::Introspect { .. }, _) => "introspections",
            (Op::RevokeGrant { .. }, _) => "grant withdrawals",
            (Op::RevokeToken { .. }, _) => "token revocations",
            (Op::Janitor { .. }, _) => "janitor runs",
            (Op::ResetPassword { .. }, _) => "password resets",
            (Op::Probe { .. }, Answer::Active(true)) => "session probes answered",
            (Op::Probe { .. }, _) => "session probes sent to sign in",
        };
        *n.entry(kind).or_default() += 1;
    }
    n.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(backend: &str, history: &[Event], violations: &[String], took: Duration) {
    eprintln!(
        "histories: {backend}: {} operations in {:.1} s, {} violations ({})",
        history.len(),
        took.as_secs_f64(),
        violations.len(),
        tally(history)
    );
    for v in violations.iter().take(20) {
        eprintln!("  {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_histories_keep_every_revocation() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    let node =
        TestServer::start_node_with(&db, &MasterKey::generate(), patient(), engine_config()).await;
    let (history, violations) = run_history(vec![node], history_ops(), 16).await;
    report("SQLite, 1 node", &history, &violations, started.elapsed());
    assert!(violations.is_empty(), "{} violations", violations.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_histories_keep_every_revocation() {
    let Some(admin_url) = crate::support::postgres_url("histories on PostgreSQL") else {
        return;
    };
    let started = Instant::now();
    let db = tessera_store::create_scratch_database(&admin_url)
        .await
        .unwrap();
    let master = MasterKey::generate();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::start_node_with(&db, &master, patient(), engine_config()).await);
    }
    let (history, violations) = run_history(nodes, history_ops(), 16).await;
    report(
        "PostgreSQL, 3 nodes",
        &history,
        &violations,
        started.elapsed(),
    );
    assert!(violations.is_empty(), "{} violations", violations.len());
}

/// Attack 3: a code presented twice at once. Whichever presentation the server takes first,
/// the other's "already used" answer means no token of the code's family works any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_presented_twice_at_once_leaves_nothing_usable() {
    let world = world(vec![TestServer::start_with(engine_config()).await]).await;
    let mut survived = 0;
    for number in 0..30 {
        let (code, epoch) = world.code(0).await;
        tokio::join!(
            world.redeem(0, &code, number, epoch),
            world.redeem(0, &code, number, epoch)
        );
        let history = world.history.lock().await.clone();
        let answers: Vec<&Answer> = history
            .iter()
            .filter(|e| matches!(e.op, Op::Redeem { code, .. } if code == number))
            .map(|e| &e.answer)
            .collect();
        for a in &answers {
            if let Answer::Issued { rt, .. } = a
                && let Answer::Issued { .. } = world.refresh(0, rt).await
            {
                survived += 1;
            }
        }
    }
    assert_eq!(
        survived, 0,
        "a family survived its code's second presentation"
    );
}
