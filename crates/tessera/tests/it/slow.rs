//! Slow and hostile clients (issue 10, item 2): a connection that trickles its request head, or
//! its body, is closed when its timeout runs out; an idle keep-alive connection lives for the
//! idle timeout, longer than the head timeout; connections past the cap are closed at once;
//! normal traffic carries on meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

fn limits() -> tessera_server::conn::ConnectionLimits {
    tessera_server::conn::ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 8,
        drain_timeout: Duration::from_secs(1),
    }
}

fn addr(t: &TestServer) -> String {
    t.base.trim_start_matches("http://").to_string()
}

/// Write `parts` one every `pause` until the server closes the connection or `give_up` passes;
/// how long the connection stayed open, and what the server answered.
async fn trickle(
    addr: &str,
    parts: &[&str],
    pause: Duration,
    give_up: Duration,
) -> (Duration, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    for part in parts.iter().cycle() {
        if start.elapsed() > give_up {
            break;
        }
        if s.write_all(part.as_bytes()).await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(pause, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break, // closed by the server
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {} // nothing yet: send the next part
        }
    }
    (
        start.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_off_at_its_timeout() {
    let t = TestServer::start_with_limits(limits()).await;
    let parts = [
        "POST /v2/oauth/token HTTP/1.1\r\n",
        "Host: x\r\n",
        "X-Slow: 1\r\n",
    ];
    let (open, _) = trickle(
        &addr(&t),
        &parts,
        Duration::from_millis(300),
        Duration::from_secs(6),
    )
    .await;
    assert!(open < Duration::from_secs(3), "still open after {open:?}");
    // Meanwhile and after, normal requests are served.
    assert_eq!(t.get("/healthz", None).await.status, 200);
}

#[tokio::test]
async fn a_trickled_body_is_refused_at_its_timeout() {
    let t = TestServer::start_with_limits(limits()).await;
    let head = "POST /v2/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\nAuthorization: Basic eDp5\r\n\r\n";
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let (open, answer) = trickle_on(s, Duration::from_millis(300), Duration::from_secs(6)).await;
    assert!(
        open < Duration::from_secs(3),
        "still open after {open:?}: {answer}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert_eq!(t.get("/healthz", None).await.status, 200);
}

/// Trickle one body byte per `pause` on an open request.
async fn trickle_on(mut s: TcpStream, pause: Duration, give_up: Duration) -> (Duration, String) {
    let start = Instant::now();
    let mut answer = Vec::new();
    while start.elapsed() < give_up {
        if s.write_all(b"{").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(pause, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    (
        start.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_and_the_cap_frees_up() {
    let t = TestServer::start_with_limits(limits()).await;
    // Eight idle connections fill the cap...
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr(&t)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so a ninth is closed without an answer.
    let mut ninth = TcpStream::connect(addr(&t)).await.unwrap();
    ninth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), ninth.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed at accept");
    // The idle ones time out (their head never comes), and the server serves again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.get("/healthz", None).await.status, 200);
}

/// Send one GET /healthz on `s` and read its whole (small) answer; `None` when the server has
/// closed the connection.
async fn healthz_on(s: &mut TcpStream) -> Option<String> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_head_timeout_until_the_idle_timeout() {
    let t = TestServer::start_with_limits(limits()).await;
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    let first = healthz_on(&mut s).await.expect("first answer");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle for twice the head timeout, within the idle timeout: still served.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let second = healthz_on(&mut s).await.expect("served after 2 s idle");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Past the idle timeout: closed.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
        .await
        .expect("the server closed it")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the idle timeout");
}

#[tokio::test]
async fn a_trickled_head_after_a_served_request_is_cut_off_at_the_head_timeout() {
    let t = TestServer::start_with_limits(limits()).await;
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    assert!(healthz_on(&mut s).await.is_some());
    // The next head trickles: the head clock (1 s), not the idle clock (3 s), ends it.
    let start = Instant::now();
    for part in ["GET /healthz HTTP/1.1\r\n", "Host: x\r\n", "X-Slow: 1\r\n"]
        .iter()
        .cycle()
    {
        if start.elapsed() > Duration::from_secs(6) || s.write_all(part.as_bytes()).await.is_err() {
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => panic!("answered a head that never ended"),
            Err(_) => {}
        }
    }
    let open = start.elapsed();
    assert!(
        open < Duration::from_millis(2500),
        "still open after {open:?}"
    );
}

#[tokio::test]
async fn clients_that_stop_reading_are_closed_at_the_write_timeout_and_free_their_slots() {
    let t = TestServer::start_with_limits(limits()).await;
    let addr: std::net::SocketAddr = addr(&t).parse().unwrap();
    // Fill the cap (8) with clients that pipeline requests and never read an answer.
    let mut writers = Vec::new();
    for _ in 0..8 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        writers.push(tokio::spawn(async move {
            let request = "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: x\r\n\r\n";
            for _ in 0..5000 {
                if s.write_all(request.as_bytes()).await.is_err() {
                    return;
                }
            }
            // Hold the connection without reading until the test ends.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Within a few write timeouts, their writes have stalled and they are closed, so the
    // server admits new connections again.
    let started = Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(8) {
        let attempt = tokio::time::timeout(Duration::from_secs(1), async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            healthz_on(&mut s).await
        })
        .await;
        if let Ok(Some(answer)) = attempt
            && answer.starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for w in writers {
        w.abort();
    }
    assert!(
        served,
        "non-reading clients still hold every connection slot"
    );
}

/// Issue 18 row 8: with `--tls-cert`, the cap was taken only after the TLS handshake, so
/// connections that never began one were unlimited (600 of them used every file descriptor, and
/// the admin listener stopped answering). Handshakes now count against the cap and end at the
/// head timeout; the admin listener, served over TLS too, has a cap of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_count_against_the_cap_and_time_out() {
    let pki = tempfile::tempdir().unwrap();
    let (files, ca) = crate::interop::test_pki(pki.path());
    // A head timeout long enough to tell the refused connections from the held ones on a busy
    // machine.
    let limits = tessera_server::conn::ConnectionLimits {
        header_timeout: Duration::from_secs(4),
        ..limits()
    };
    let t = TestServer::start_tls_with(
        files,
        limits,
        tessera_server::ServedAt::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let main = t.base.trim_start_matches("https://").to_string();
    let admin = t.server.as_ref().unwrap().admin_addr.unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();

    // 30 connections that never say a word: 8 are held (the cap), the rest closed at once.
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(&main).await.unwrap());
    }
    let opened = Instant::now();
    let mut closed = vec![false; idle.len()];
    while closed.iter().filter(|c| **c).count() < 22 && opened.elapsed() < Duration::from_secs(3) {
        for (s, closed) in idle.iter_mut().zip(closed.iter_mut()) {
            let mut buf = [0u8; 16];
            if !*closed
                && let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf)).await
            {
                *closed = true;
            }
        }
    }
    let refused = closed.iter().filter(|c| **c).count();
    assert_eq!(
        refused, 22,
        "of 30 idle handshakes past a cap of 8, {refused} were refused"
    );

    // Meanwhile the admin listener answers, over TLS.
    let r = https
        .get(format!(
            "https://localhost:{}/admin/v1/partners",
            admin.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // With the same layers as the main listener's (one `layered()`): HSTS too.
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert!(r.headers().contains_key("x-request-id"));

    // The held ones end at the head timeout (4 s), and the main listener serves again.
    for s in &mut idle {
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0) | Err(_))), "{r:?}");
    }
    let took = opened.elapsed();
    assert!(took < Duration::from_secs(9), "held for {took:?}");
    let port = main.rsplit(':').next().unwrap();
    let r = https
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Issue 18 row 11: a partial head pipelined behind a complete request was closed only at the
/// idle timeout, because hyper had read it ahead and nothing more arrived to start its clock.
/// Its clock now starts once the request before it is answered.
#[tokio::test]
async fn a_pipelined_partial_head_gets_the_head_timeout_not_the_idle_one() {
    let t = TestServer::start_with_limits(limits()).await;
    let partial = "GET /healthz HTTP/1.1\r\nHo";
    for first in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        // A chunked body before it (found by the attack on the fix): followed chunk by chunk.
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na=b&\r\n0\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr(&t)).await.unwrap();
        let pipelined = format!("{first}{partial}");
        s.write_all(pipelined.as_bytes()).await.unwrap();
        let start = Instant::now();
        let mut answer = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(6), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => panic!("still open after 6 s"),
            }
        }
        let open = start.elapsed();
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 "),
            "the complete request is answered"
        );
        // limits(): the head timeout is 1 s, the idle timeout 3 s.
        assert!(
            open < Duration::from_millis(2500),
            "closed only after {open:?}: {first}"
        );
    }

    // A complete pipelined pair is answered twice, and the connection then idles on.
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    let get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(format!("{get}{get}").as_bytes()).await.unwrap();
    let mut answer = String::new();
    while answer.matches("HTTP/1.1 200").count() < 2 {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("both answered")
            .unwrap();
        assert!(n > 0, "closed early: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let mut buf = [0u8; 16];
    let idle = tokio::time::timeout(Duration::from_millis(1800), s.read(&mut buf)).await;
    assert!(
        idle.is_err(),
        "an idle connection outlives the head timeout: {idle:?}"
    );
}
