//! `tessera serve` options: flags, then `TESSERA_*` environment variables, then a `--config`
//! TOML file, then defaults (README, *`tessera serve`*). Flags win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use tessera_core::EngineConfig;
use tessera_core::keys::Alg;

pub const DEFAULT_DATABASE: &str = "sqlite://tessera.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the options below (snake_case keys).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TESSERA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Database URL [default: sqlite://tessera.db].
    #[arg(long, env = "TESSERA_DATABASE")]
    pub database: Option<String>,
    /// `iss` of every token [default: http://<listen address>].
    #[arg(long, env = "TESSERA_ISSUER")]
    pub issuer: Option<String>,
    /// Token requests a second per partner or client (burst of as many), for all nodes of a
    /// shared database together; 0 turns it off [default: 50].
    #[arg(long, env = "TESSERA_TOKEN_RATE_LIMIT")]
    pub token_rate_limit: Option<u32>,
    /// Algorithm of a signing key created when none exists: ES256, EdDSA or RS256
    /// [default: ES256].
    #[arg(long, env = "TESSERA_SIGNING_ALG")]
    pub signing_alg: Option<Alg>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Database connection pool size [default: 8].
    #[arg(long, env = "TESSERA_DB_POOL")]
    pub db_pool: Option<u32>,
    /// Seconds within which a request that needs the database must get it [default: 2].
    #[arg(long, env = "TESSERA_DB_TIMEOUT")]
    pub db_timeout: Option<u64>,
    /// Seconds during which reuse of a rotated refresh token is refused without revoking its
    /// family [default: 30].
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE")]
    pub refresh_reuse_grace: Option<i64>,
    /// Seconds after which a refresh-token family ends however often it was refreshed
    /// [default: 7776000, 90 days].
    #[arg(long, env = "TESSERA_REFRESH_FAMILY_LIFETIME")]
    pub refresh_family_lifetime: Option<i64>,
    /// Record every token issued in the audit trail (`on`) or only sign-ins, lockouts, reuse,
    /// revocations, grants and admin changes (`off`) [default: on].
    #[arg(long, env = "TESSERA_AUDIT_TOKENS", value_parser = ["on", "off"])]
    pub audit_tokens: Option<String>,
    /// Rotate the signing key every N days (at least 2): the next key is published a day before
    /// it signs; old keys stay published until their tokens expire [default: off].
    #[arg(long, env = "TESSERA_KEY_ROTATION_DAYS")]
    pub key_rotation_days: Option<i64>,
    /// Days audit events are kept before the janitor deletes them [default: 90].
    #[arg(long, env = "TESSERA_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<i64>,
    /// Password checks that may wait for an Argon2 slot besides those running; past it, a check
    /// is answered 503 with Retry-After at once [default: 32].
    #[arg(long, env = "TESSERA_PASSWORD_QUEUE")]
    pub password_queue: Option<usize>,
    /// Seconds a client has to send a request's head, from its first byte (from the connection's
    /// accept for its first request) [default: 10].
    #[arg(long, env = "TESSERA_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request [default: 60].
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a response write may make no progress (the client stopped reading) before the
    /// connection is closed [default: 30].
    #[arg(long, env = "TESSERA_WRITE_TIMEOUT")]
    pub write_timeout: Option<u64>,
    /// Seconds a client has to send a request's body [default: 30].
    #[arg(long, env = "TESSERA_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Seconds a node keeps serving after SIGTERM while `/readyz` answers 503, so that its load
    /// balancer stops sending it connections before it stops accepting them; every response in
    /// that time closes its connection. Ctrl-C (SIGINT), or a second signal, skips it
    /// [default: 5].
    #[arg(long, env = "TESSERA_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Seconds in-flight requests get to finish once the node stops accepting [default: 30].
    #[arg(long, env = "TESSERA_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u64>,
    /// Connections open at once; past it, new ones are closed at accept [default: 10000].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Where `/metrics` (Prometheus) is served: `local` (on the main listener, to connections
    /// from this machine that no proxy forwarded), `public` (on the main listener, to everyone),
    /// an address of its own (host:port, say one only the monitoring network reaches), or `off`
    /// (nothing recorded) [default: local].
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Where the admin API (`/admin/v1`; every call needs an admin token) is served: `local`,
    /// `public`, an address of its own (say one only the back office reaches), or `off`, as for
    /// --metrics-listen [default: local].
    #[arg(long, env = "TESSERA_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// A proxy network (CIDR, or one address) whose connections name their client in
    /// --forwarded-header; repeatable, or comma-separated in the variable. From these peers only,
    /// the throttles, the audit trail and the log take the right-most address in the header that
    /// is not itself a trusted proxy [default: none: every request is its TCP peer].
    #[arg(
        long = "trusted-proxy",
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<String>,
    /// The header the trusted proxies write: x-forwarded-for or forwarded (RFC 7239)
    /// [default: x-forwarded-for].
    #[arg(long, env = "TESSERA_FORWARDED_HEADER")]
    pub forwarded_header: Option<String>,
    /// `/authorize` requests one requester may send back to back, then one every 2 seconds;
    /// 0 turns it off [default: 30].
    #[arg(long, env = "TESSERA_FLOW_BURST")]
    pub flow_burst: Option<u32>,
    /// Self-registrations a partner's users may make an hour (at most 5 back to
    /// back), and one requester half as many (at most 2 back to back); 0 turns it off
    /// [default: 10].
    #[arg(long, env = "TESSERA_REGISTRATIONS_PER_HOUR")]
    pub registrations_per_hour: Option<u32>,
    /// Log lines as human-readable `text` or as `json` lines for log shippers [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Create demo data on an empty database and print how to use it.
    #[arg(long, env = "TESSERA_DEV")]
    pub dev: bool,
}

/// How log lines are written to stderr.
#[derive(clap::ValueEnum, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, with the request's span (its `request_id`) in each.
    Json,
}

/// The `--config` file: the same options, all optional; unknown keys are an error, so a typo
/// does not silently fall back to a default.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<String>,
    issuer: Option<String>,
    token_rate_limit: Option<u32>,
    signing_alg: Option<Alg>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    db_pool: Option<u32>,
    db_timeout: Option<u64>,
    refresh_reuse_grace: Option<i64>,
    refresh_family_lifetime: Option<i64>,
    audit_retention_days: Option<i64>,
    audit_tokens: Option<String>,
    key_rotation_days: Option<i64>,
    password_queue: Option<usize>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    write_timeout: Option<u64>,
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace: Option<u64>,
    drain_timeout: Option<u64>,
    log_format: Option<LogFormat>,
    trusted_proxies: Option<Vec<String>>,
    forwarded_header: Option<String>,
    flow_burst: Option<u32>,
    registrations_per_hour: Option<u32>,
    metrics_listen: Option<String>,
    admin_listen: Option<String>,
    dev: Option<bool>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: String,
    pub issuer: Option<String>,
    pub db_pool: Option<u32>,
    pub db_timeout: u64,
    pub dev: bool,
    pub tls: Option<tessera_server::tls::TlsFiles>,
    pub engine: EngineConfig,
    pub limits: tessera_server::conn::ConnectionLimits,
    /// Served after SIGTERM with readiness failing, before the listener closes.
    pub shutdown_grace: std::time::Duration,
    pub trusted_proxies: tessera_server::forwarded::TrustedProxies,
    pub log_format: LogFormat,
    pub metrics: tessera_server::ServedAt,
    pub admin: tessera_server::ServedAt,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut engine = EngineConfig::new(String::new());
        engine.audience = String::new();
        if let Some(n) = self.token_rate_limit.or(file.token_rate_limit) {
            engine.token_rate_limit = n;
        }
        if let Some(alg) = self.signing_alg.or(file.signing_alg) {
            engine.signing_alg = alg;
        }
        if let Some(g) = self.refresh_reuse_grace.or(file.refresh_reuse_grace) {
            anyhow::ensure!(g >= 0, "refresh_reuse_grace must not be negative");
            engine.refresh_reuse_grace = g;
        }
        if let Some(l) = self
            .refresh_family_lifetime
            .or(file.refresh_family_lifetime)
        {
            anyhow::ensure!(
                l >= 60,
                "refresh_family_lifetime must be at least 60 seconds"
            );
            engine.refresh_family_lifetime = l;
        }
        if let Some(days) = self.key_rotation_days.or(file.key_rotation_days) {
            anyhow::ensure!(days >= 2, "key_rotation_days must be at least 2");
            engine.key_rotation = Some(days * 86_400);
        }
        match self.audit_tokens.or(file.audit_tokens).as_deref() {
            None | Some("on") => {}
            Some("off") => engine.audit_tokens = false,
            Some(other) => anyhow::bail!("audit_tokens must be on or off, not {other:?}"),
        }
        if let Some(days) = self.audit_retention_days.or(file.audit_retention_days) {
            anyhow::ensure!(days >= 1, "audit_retention_days must be at least 1");
            engine.audit_retention = days * 86_400;
        }
        if let Some(q) = self.password_queue.or(file.password_queue) {
            engine.password_queue = q;
        }
        if let Some(n) = self.flow_burst.or(file.flow_burst) {
            engine.flow_burst = n;
        }
        if let Some(n) = self.registrations_per_hour.or(file.registrations_per_hour) {
            engine.registrations_per_hour = n;
        }
        let proxies = if self.trusted_proxy.is_empty() {
            file.trusted_proxies.unwrap_or_default()
        } else {
            self.trusted_proxy
        };
        let proxies = proxies
            .iter()
            .map(|p| proxy_network(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let header = match self.forwarded_header.or(file.forwarded_header) {
            Some(h) => h.parse().map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        let trusted_proxies = tessera_server::forwarded::TrustedProxies::new(proxies, header);
        let issuer = self.issuer.or(file.issuer);
        if let Some(i) = &issuer {
            anyhow::ensure!(
                i.starts_with("https://") || i.starts_with("http://"),
                "the issuer must be an http(s) URL, got {i:?}"
            );
        }
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(tessera_server::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("give both tls_cert and tls_key, or neither"),
        };
        let mut limits = tessera_server::conn::ConnectionLimits::default();
        if let Some(s) = self.header_timeout.or(file.header_timeout) {
            anyhow::ensure!(s >= 1, "header_timeout must be at least 1 second");
            limits.header_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.idle_timeout.or(file.idle_timeout) {
            anyhow::ensure!(s >= 1, "idle_timeout must be at least 1 second");
            limits.idle_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.write_timeout.or(file.write_timeout) {
            anyhow::ensure!(s >= 1, "write_timeout must be at least 1 second");
            limits.write_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.body_timeout.or(file.body_timeout) {
            anyhow::ensure!(s >= 1, "body_timeout must be at least 1 second");
            limits.body_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(n) = self.max_connections.or(file.max_connections) {
            anyhow::ensure!(n >= 1, "max_connections must be at least 1");
            limits.max_connections = n;
        }
        if let Some(s) = self.drain_timeout.or(file.drain_timeout) {
            limits.drain_timeout = std::time::Duration::from_secs(s);
        }
        let shutdown_grace = self.shutdown_grace.or(file.shutdown_grace).unwrap_or(5);
        anyhow::ensure!(
            shutdown_grace <= 600,
            "shutdown_grace must be at most 600 seconds"
        );
        let at = |name: &str, value: Option<String>| -> anyhow::Result<tessera_server::ServedAt> {
            Ok(match value.as_deref() {
                None | Some("local") => tessera_server::ServedAt::Local,
                Some("public") => tessera_server::ServedAt::Main,
                Some("off") => tessera_server::ServedAt::Off,
                Some(addr) => {
                    tessera_server::ServedAt::Listen(addr.parse().with_context(|| {
                        format!("{name}: {addr:?} is none of an address (host:port), local, public and off")
                    })?)
                }
            })
        };
        let metrics = at(
            "metrics_listen",
            self.metrics_listen.or(file.metrics_listen),
        )?;
        let admin = at("admin_listen", self.admin_listen.or(file.admin_listen))?;
        Ok(ServeConfig {
            trusted_proxies,
            metrics,
            admin,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            limits,
            shutdown_grace: std::time::Duration::from_secs(shutdown_grace),
            tls,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            database: self
                .database
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
            issuer: issuer.map(|i| i.trim_end_matches('/').to_string()),
            db_pool: self.db_pool.or(file.db_pool),
            db_timeout: self.db_timeout.or(file.db_timeout).unwrap_or(2),
            dev: self.dev || file.dev.unwrap_or(false),
            engine,
        })
    }
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (`10.0.0.7`, a /32 or /128).
fn proxy_network(text: &str) -> anyhow::Result<tessera_server::forwarded::IpNet> {
    let text = text.trim();
    text.parse::<tessera_server::forwarded::IpNet>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(tessera_server::forwarded::IpNet::from)
        })
        .map(|net| net.trunc())
        .map_err(|_| {
            anyhow::anyhow!(
                "trusted proxy {text:?} is neither a network (10.0.0.0/8) nor an address"
            )
        })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\ntoken_rate_limit = 7\ndatabase = \"sqlite://f.db\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            token_rate_limit: Some(3),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.engine.token_rate_limit, 3);
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.database, "sqlite://f.db");
        assert_eq!(c.db_timeout, 2);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
    }

    #[test]
    fn trusted_proxies_and_throttles_are_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\"]\nforwarded_header = \"forwarded\"\nflow_burst = 4\n",
        )
        .unwrap();
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(!from_file.trusted_proxies.is_empty());
        assert_eq!(from_file.engine.flow_burst, 4);
        assert_eq!(from_file.engine.registrations_per_hour, 10);
        let flags = ServeArgs {
            config: Some(path),
            trusted_proxy: vec!["192.168.1.7".into(), "fd00::/8".into()],
            registrations_per_hour: Some(0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(flags.engine.registrations_per_hour, 0);
        let bad = |proxy: &str, header: Option<&str>| {
            ServeArgs {
                trusted_proxy: vec![proxy.into()],
                forwarded_header: header.map(Into::into),
                ..Default::default()
            }
            .resolve()
            .unwrap_err()
            .to_string()
        };
        assert!(bad("10.0.0.0/33", None).contains("trusted proxy"));
        assert!(bad("balancer", None).contains("trusted proxy"));
        assert!(bad("10.0.0.1", Some("x-real-ip")).contains("x-forwarded-for or forwarded"));
    }

    /// `docs/configuration.md` is written from the options' own definitions (their doc
    /// comments, variables and defaults): it fails when the file is stale, and
    /// `TESSERA_WRITE_DOCS=1 cargo test -p tessera --bin tessera configuration` rewrites it.
    #[test]
    fn the_configuration_reference_is_the_cli_s_own() {
        let serve = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let mut doc = String::from(
            "# Configuration reference: `tessera serve`\n\n\
             Generated from the options' own definitions by a test \
             (`TESSERA_WRITE_DOCS=1 cargo test -p tessera --bin tessera configuration` \
             rewrites it; the test fails when it is stale). Precedence: flags, then the \
             environment, then the `--config` TOML file, whose keys are the flags' names in \
             snake_case (`trusted_proxies` is a list), then the defaults. A sample file with \
             every key, commented out at its default: [`deploy/tessera.toml`](../deploy/tessera.toml).\n\n\
             | flag | environment | what it sets |\n|---|---|---|\n",
        );
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let value = arg
                .get_value_names()
                .map(|v| format!(" {}", v.join(" ")))
                .filter(|_| arg.get_action().takes_values())
                .unwrap_or_default();
            let env = arg
                .get_env()
                .map(|e| format!("`{}`", e.to_string_lossy()))
                .unwrap_or_default();
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| {
                    h.to_string()
                        .replace('\n', " ")
                        .replace('|', "\\|")
                        .replace('<', "&lt;")
                })
                .unwrap_or_default();
            doc.push_str(&format!("| `--{long}{value}` | {env} | {help} |\n"));
        }
        doc.push_str(&format!(
            "\nRead from the environment only (never from a flag, which other users could see \
             in the process list, or from the config file):\n\n\
             | environment | what it sets |\n|---|---|\n\
             | `{}` | the master key that seals private signing keys at rest: 64 hex digits or \
             base64 of 32 bytes; unset, `<database file>.key` is read (and created by `serve`) |\n\
             | `TESSERA_LOG` | the log filter, in `tracing`'s syntax [default: {}] |\n",
            crate::master::ENV,
            crate::serve::DEFAULT_LOG_FILTER
        ));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        if std::env::var_os("TESSERA_WRITE_DOCS").is_some() {
            std::fs::write(path, &doc).unwrap();
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == doc,
            "docs/configuration.md is stale: run TESSERA_WRITE_DOCS=1 cargo test -p tessera \
             --bin tessera configuration"
        );
    }
}

#[cfg(test)]
mod sample;
