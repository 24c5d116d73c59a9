//! `tessera serve`: open and migrate the database, load or create the master and signing keys,
//! serve until SIGTERM or Ctrl-C, then let in-flight requests finish.

use std::time::Instant;

use anyhow::Context;
use tessera_server::ServerConfig;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, ServeArgs};
use crate::{dev, master};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = args.resolve()?;
    init_logging(config.log_format);
    // Before anything is announced: a SIGTERM that arrives once we say we listen must find its
    // handler installed, or the default action would kill us mid-request.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let options = tessera_store::Options {
        pool_size: config.db_pool,
        timeout: std::time::Duration::from_secs(config.db_timeout),
    };
    let store = tessera_store::open(&config.database, &options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                tessera_store::redact_url(&config.database)
            )
        })?;
    let master = master::load(&config.database, true)?;
    warn_if_descriptors_short(config.limits.max_connections, config.db_pool.unwrap_or(10));
    if config.issuer.is_none() && config.listen.ip().is_unspecified() {
        tracing::warn!(
            "no --issuer set and listening on {}: tokens and discovery will name {}, an \
             address no client can use; set --issuer to the URL clients use",
            config.listen,
            config.listen
        );
    } else if config.issuer.is_none() && !config.database.starts_with("sqlite:") {
        tracing::warn!(
            "no --issuer set: tokens will name this node's own address, and other nodes will \
             refuse them; set --issuer to the URL clients use (the load balancer's)"
        );
    }
    let demo = if config.dev {
        Some(dev::ensure_demo_data(store.as_ref()).await?)
    } else {
        None
    };
    let server = tessera_server::start(
        store,
        master,
        ServerConfig {
            listen: config.listen,
            issuer: config.issuer.clone(),
            engine: config.engine,
            tls: config.tls.clone(),
            limits: config.limits,
            trusted_proxies: config.trusted_proxies.clone(),
            metrics: config.metrics,
            admin: config.admin,
        },
    )
    .await?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", server.addr));
    tracing::info!(
        addr = %server.addr,
        issuer = %server.engine.config().issuer,
        database = %tessera_store::redact_url(&config.database),
        ready_ms = started.elapsed().as_millis() as u64,
        "tessera listening on {scheme}://{}", server.addr
    );
    if let Some(metrics) = server.metrics_addr {
        tracing::info!("metrics on {scheme}://{metrics}/metrics");
    }
    if let Some(admin) = server.admin_addr {
        tracing::info!("admin API on {scheme}://{admin}/admin/v1");
    }
    if let Some(demo) = demo {
        dev::print_instructions(&demo, &base);
    }
    let terminated = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = term.recv() => true,
    };
    // Behind a load balancer, SIGTERM (Kubernetes, systemd, `docker stop`) comes before the
    // balancer has stopped sending this node connections: keep serving, with readiness
    // failing, for the grace period. Someone at a terminal pressing Ctrl-C does not wait.
    if terminated && !config.shutdown_grace.is_zero() {
        server.start_draining();
        tracing::info!(
            grace_s = config.shutdown_grace.as_secs(),
            "draining: /readyz answers 503; serving until the grace period ends"
        );
        tokio::select! {
            () = tokio::time::sleep(config.shutdown_grace) => {},
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The log filter when `TESSERA_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tessera::audit=off";

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .map_event_format(|inner| WithRequestId { inner, json: false })
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .map_event_format(|inner| WithRequestId { inner, json: true })
            .try_init(),
    };
}

/// Puts the id of the request being served (from the task-local context the server sets) on
/// every log line written while serving it: a `request_id=` prefix in text, a top-level
/// `"request_id"` in JSON. Cheaper than a span per request, and paid only when a line is
/// written. Request ids are `[A-Za-z0-9._:-]` only, so they need no escaping.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let id = tessera_core::audit::CONTEXT
            .try_with(|c| c.request_id.clone())
            .ok()
            .flatten();
        if !self.json {
            if let Some(id) = id {
                write!(writer, "request_id={id} ")?;
            }
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // JSON allows U+2028, U+2029 and U+0085 raw inside strings, but line-splitting log
        // shippers take them for line ends: escape them (they occur only inside strings).
        if line.contains(['\u{2028}', '\u{2029}', '\u{85}']) {
            line = line
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029")
                .replace('\u{85}', "\\u0085");
        }
        match (id, line.strip_prefix('{')) {
            (Some(id), Some(rest)) => write!(writer, "{{\"request_id\":\"{id}\",{rest}"),
            _ => writer.write_str(&line),
        }
    }
}

/// Each connection holds a file descriptor, handshakes included. When the process may open
/// fewer than the connection cap needs (plus the pool, the listeners and the admin and metrics
/// caps), a flood would run out of descriptors before the cap turns anyone away, and every
/// listener would stop accepting: say so at start.
fn warn_if_descriptors_short(max_connections: usize, pool: u32) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    let needed = max_connections + 2 * 256 + pool as usize + 64;
    if let Some(soft) = soft.filter(|&soft| soft < needed) {
        tracing::warn!(
            open_files = soft,
            needed,
            "the open-file limit is below what --max-connections needs; raise it (ulimit -n, \
             LimitNOFILE=) or lower --max-connections"
        );
    }
}
