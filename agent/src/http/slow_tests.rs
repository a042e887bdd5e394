//! Slow and greedy clients against the real listener on loopback: a peer holding connections
//! open, trickling a head or a body, must not keep a webhook delivery from another address out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

use super::*;

const SECRET: &[u8] = b"hook-s3cret";

fn limits() -> Limits {
    Limits {
        connections: 64,
        per_peer: 4,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        lifetime: Duration::from_secs(5),
        ..Limits::default()
    }
}

async fn start(limits: Limits) -> (SocketAddr, Arc<HttpState>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(HttpState {
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(Readiness::new(false, Duration::from_secs(300))),
        webhook_secret: Some(SECRET.to_vec()),
        trigger: Arc::new(Notify::new()),
    });
    tokio::spawn(serve_with(
        listener,
        state.clone(),
        std::future::pending(),
        limits,
    ));
    (addr, state)
}

/// A connection from another loopback address (Linux routes all of 127/8 to `lo`).
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server closes `s` (EOF or reset) within `within`, reading whatever it sends.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A signed GitHub push delivery from 127.0.0.1; returns the status line.
async fn deliver(addr: SocketAddr) -> String {
    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig = github_signature(SECRET, body);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /hook HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let reply = closed_within(&mut s, Duration::from_secs(2))
        .await
        .expect("the delivery was answered within 2 s");
    reply.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_peer_holding_connections_never_keeps_a_delivery_out() {
    let (addr, state) = start(limits()).await;
    // 40 connections from one peer, each sending half a request head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = connect_from("127.0.0.2", addr).await;
        s.write_all(b"POST /hook HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Those over the peer's cap are closed at once.
    let mut closed_at_once = 0;
    for s in &mut slow {
        if closed_within(s, Duration::from_millis(300)).await.is_some() {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= 36,
        "only {closed_at_once} of 40 closed at once"
    );

    // A real delivery from another address goes through while the slow peer holds its share.
    let started = Instant::now();
    assert_eq!(deliver(addr).await, "HTTP/1.1 202 Accepted");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(1), state.trigger.notified())
        .await
        .expect("the delivery triggered a fetch");

    // The held ones end at the head deadline, freeing the peer's slots.
    let mut s = connect_from("127.0.0.3", addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(3))
            .await
            .is_some(),
        "a head never finished kept its connection"
    );
    let mut again = connect_from("127.0.0.2", addr).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = closed_within(&mut again, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_its_deadline() {
    let (addr, _) = start(limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /hook HTTP/1.1\r\nHost: t\r\nX-Gitlab-Token: x\r\nContent-Length: 1000\r\n\r\n{\"ref\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let reply = closed_within(&mut s, Duration::from_secs(3))
        .await
        .expect("a body never finished kept its connection");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kept_alive_connection_ends_at_its_lifetime() {
    let (addr, _) = start(Limits {
        lifetime: Duration::from_secs(2),
        header_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Answered, then kept open idle until the lifetime ends it.
    let reply = closed_within(&mut s, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
