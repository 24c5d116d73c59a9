//! The connection loop: HTTP/1.1 over plain TCP or TLS with bounds that a slow or hostile client
//! cannot stretch. A request's head must arrive within [`ConnectionLimits::header_timeout`] (the
//! same clock runs while a keep-alive connection waits for its next request, so an idle
//! connection is closed after it too), a body within [`ConnectionLimits::body_timeout`], and no
//! more than [`ConnectionLimits::max_connections`] connections are open at once (past it, new
//! ones are closed at accept). On shutdown the listener stops accepting and in-flight requests
//! get [`ConnectionLimits::drain_timeout`] to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app::Peer;

/// How long a client may take, and how many may be connected.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// To send a request's head (line and headers), also the longest idle keep-alive wait.
    pub header_timeout: Duration,
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
            body_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Accept and serve connections until `stop` completes, then drain.
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(io);
            continue;
        };
        let app = app.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| Deadline::new(body, body_timeout));
            request.extensions_mut().insert(ConnectInfo(Peer(peer)));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
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
