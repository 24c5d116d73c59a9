//! The connection loop: HTTP/1.1 over plain TCP or TLS with bounds that a slow or hostile client
//! cannot stretch. A request's head must arrive within [`ConnectionLimits::header_timeout`] of
//! its first byte (or of the accept, for a connection's first request), a body within
//! [`ConnectionLimits::body_timeout`] of its head, a keep-alive connection that sends nothing is
//! closed after [`ConnectionLimits::idle_timeout`], and no more than
//! [`ConnectionLimits::max_connections`] connections are open at once (past it, new ones are
//! closed at accept). While [`Draining`], every response closes its connection, so keep-alive
//! clients reconnect (through their load balancer, to another node); on shutdown the listener
//! stops accepting and in-flight requests get [`ConnectionLimits::drain_timeout`] to finish.
//!
//! hyper has one clock for the wait for a request head, which starts when the previous response
//! is sent, so it serves as the idle timeout; [`Clocked`] adds the shorter clock that starts at
//! a head's first byte and stops when hyper hands the parsed head to the service, and the clock
//! of a stalled write, which hyper has not.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::app::Peer;
use crate::forwarded::TrustedProxies;
use crate::framing::Framer;

/// How long a client may take, and how many may be connected.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// To send a request's head (line and headers), from its first byte, or from the accept for
    /// a connection's first request.
    pub header_timeout: Duration,
    /// A keep-alive connection's wait for its next request, which includes that request's head.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long (the client stopped reading) ends the
    /// connection.
    pub write_timeout: Duration,
    /// To send a request's body.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// For in-flight requests at shutdown.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A node on its way out: set once at the start of a graceful shutdown, read by readiness
/// (which then answers 503, so the load balancer stops sending new connections) and by every
/// connection (whose responses then carry `Connection: close`).
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Accept and serve connections until `stop` completes, then drain. With `tls`, each
/// connection's handshake runs on its own task under the connection cap and within
/// [`ConnectionLimits::header_timeout`], so connections that never finish a handshake count
/// against the cap and are closed like a trickled head.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    proxies: TrustedProxies,
    draining: Draining,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout.max(limits.header_timeout))
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(tcp);
            continue;
        };
        let (tls, builder) = (tls.clone(), builder.clone());
        let served = Served {
            peer,
            app: app.clone(),
            limits,
            proxies: proxies.clone(),
            draining: draining.clone(),
            watcher: graceful.watcher(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                return served.connection(tcp, &builder).await;
            };
            match tokio::time::timeout(limits.header_timeout, tls.accept(tcp)).await {
                Ok(Ok(stream)) => served.connection(stream, &builder).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: in-flight requests did not finish in time");
    }
    Ok(())
}

/// What one connection is served with.
struct Served {
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    proxies: TrustedProxies,
    draining: Draining,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Served {
    /// Serve one connection (plain or TLS) until it ends.
    async fn connection<IO>(self, io: IO, builder: &http1::Builder)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Served {
            peer,
            app,
            limits,
            proxies,
            draining,
            watcher,
        } = self;
        let body_timeout = limits.body_timeout;
        let (io, phase) = Clocked::new(io, limits.header_timeout, limits.write_timeout);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            phase.store(BUSY, Ordering::Release);
            let mut request = request.map(|body| Deadline::new(body, body_timeout));
            let client = proxies.client(peer, request.headers());
            request.extensions_mut().insert(ConnectInfo(Peer(client)));
            let answer = app.clone().oneshot(request);
            let (phase, draining) = (Arc::clone(&phase), draining.clone());
            async move {
                let mut response = answer.await;
                if draining.is_on() {
                    // hyper ends the connection once this response is written.
                    if let Ok(response) = &mut response {
                        response.headers_mut().insert(
                            hyper::header::CONNECTION,
                            hyper::header::HeaderValue::from_static("close"),
                        );
                    }
                }
                phase.store(IDLE, Ordering::Release);
                response
            }
        });
        let served = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
        if let Err(e) = served.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Between requests: the next byte read starts a head.
const IDLE: u8 = 0;
/// A head is arriving; its clock runs.
const HEAD: u8 = 1;
/// hyper has parsed the head and the service runs; the body has its own [`Deadline`].
const BUSY: u8 = 2;

/// A connection's I/O with two clocks. The head clock is armed by the first byte read while the
/// connection is [`IDLE`] (and at the accept) and stopped when the service takes the request;
/// once it runs out, a read fails. The write clock is armed when a write cannot proceed (the
/// client's window is full) and stopped by any progress; once it runs out, the write fails.
/// Either failure makes hyper close the connection.
struct Clocked<IO> {
    io: IO,
    phase: Arc<AtomicU8>,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    write_timeout: Duration,
    write_deadline: Pin<Box<tokio::time::Sleep>>,
    write_stalled: bool,
    /// Request boundaries in what was read, to see a pipelined partial head.
    framer: Framer,
}

impl<IO> Clocked<IO> {
    fn new(io: IO, timeout: Duration, write_timeout: Duration) -> (Clocked<IO>, Arc<AtomicU8>) {
        let phase = Arc::new(AtomicU8::new(HEAD));
        let clock = Clocked {
            io,
            phase: Arc::clone(&phase),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            write_timeout,
            write_deadline: Box::pin(tokio::time::sleep(write_timeout)),
            write_stalled: false,
            framer: Framer::new(),
        };
        (clock, phase)
    }

    /// Between requests, a head has begun: its clock starts now. (Inside a head or a request,
    /// nothing changes.)
    fn start_head_clock(&mut self) {
        if self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let at = tokio::time::Instant::now() + self.timeout;
            self.deadline.as_mut().reset(at);
        }
    }

    /// Account for the outcome of a write (or flush): progress stops the write clock, a write
    /// that cannot proceed starts it, and one that has waited too long fails.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match outcome {
            Poll::Pending => {
                if !self.write_stalled {
                    self.write_stalled = true;
                    let at = tokio::time::Instant::now() + self.write_timeout;
                    self.write_deadline.as_mut().reset(at);
                }
                if self.write_deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client has not read its response in time",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_stalled = false;
                ready
            }
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Clocked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // The previous request is answered, and hyper holds the start of the next head (it read
        // ahead): that head's clock starts now, as if its first byte had just arrived.
        if this.framer.head_started() {
            this.start_head_clock();
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.framer.feed(&buf.filled()[before..]);
                if buf.filled().len() > before {
                    this.start_head_clock();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.phase.load(Ordering::Acquire) == HEAD
                    && this.deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Clocked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write(cx, data);
        this.written(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_flush(cx);
        this.written(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes, however it trickles in: the whole body
/// must arrive within the body timeout of the request's head.
struct Deadline {
    inner: Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Deadline {
        Deadline {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for Deadline {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let std::task::Poll::Ready(frame) = std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            return std::task::Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        std::task::Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
