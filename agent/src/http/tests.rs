//! Real server on 127.0.0.1:0, real HTTP/1.1 requests over a TcpStream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use renderer::protocol::SyncResult;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use super::*;

const SECRET: &[u8] = b"hook-s3cret";

struct Server {
    addr: SocketAddr,
    state: Arc<HttpState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(secret: Option<&[u8]>, lease_needed: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(HttpState {
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(Readiness::new(lease_needed, Duration::from_secs(300))),
        webhook_secret: secret.map(<[u8]>::to_vec),
        trigger: Arc::new(Notify::new()),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        state,
        stop: Some(stop),
        task,
    }
}

/// Sends one request and returns (status, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading all of an oversized body.
    let _ = s.write_all(body).await;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
        {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn healthz_readyz_metrics_and_shutdown() {
    let mut server = start(None, false).await;
    assert_eq!(
        request(server.addr, "GET", "/healthz", &[], b"").await.0,
        200
    );
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await.0,
        503
    );
    server.state.readiness.mark_attempted();
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await,
        (200, "ready\n".into())
    );

    server
        .state
        .metrics
        .record_reconcile(SyncResult::Synced, Duration::from_millis(20));
    server.state.metrics.add_applied(3);
    let (status, body) = request(server.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("gitops_reconcile_total{result=\"Synced\"} 1"),
        "{body}"
    );
    assert!(body.contains("gitops_objects_applied_total 3"), "{body}");

    assert_eq!(request(server.addr, "GET", "/nope", &[], b"").await.0, 404);
    assert_eq!(
        request(server.addr, "DELETE", "/metrics", &[], b"").await.0,
        405
    );

    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener still open after shutdown"
    );
}

#[tokio::test]
async fn readiness_follows_the_lease() {
    let server = start(None, true).await;
    server.state.readiness.mark_attempted();
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await.0,
        503
    );
    server.state.readiness.set_leading(true);
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await.0,
        200
    );
    server.state.readiness.set_leading(false);
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await.0,
        503
    );
}

#[tokio::test]
async fn readiness_follows_the_api_server() {
    let server = start(None, false).await;
    server.state.readiness.mark_attempted();
    server.state.readiness.set_api_reachable(false);
    let (code, body) = request(server.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(code, 503);
    assert!(body.contains("API server unreachable"), "{body}");
    server.state.readiness.set_api_reachable(true);
    assert_eq!(
        request(server.addr, "GET", "/readyz", &[], b"").await.0,
        200
    );
}

#[tokio::test]
async fn github_hook_triggers_a_fetch_and_bad_signatures_are_counted() {
    let server = start(Some(SECRET), false).await;
    let body = br#"{"ref":"refs/heads/main","after":"4b825dc642cb6eb9a060e54bf8d69288fbee4904"}"#;
    let sig = github_signature(SECRET, body);
    let (status, _) = request(
        server.addr,
        "POST",
        "/hook",
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
        body,
    )
    .await;
    assert_eq!(status, 202);
    // The permit is stored, so a loop that starts waiting after the request still wakes.
    tokio::time::timeout(Duration::from_secs(1), server.state.trigger.notified())
        .await
        .expect("trigger fired");

    let forged = github_signature(b"wrong", body);
    let (status, msg) = request(
        server.addr,
        "POST",
        "/hook",
        &[("X-Hub-Signature-256", &forged)],
        body,
    )
    .await;
    assert_eq!(status, 401);
    assert!(msg.contains("does not match"), "{msg}");
    assert_eq!(
        request(server.addr, "POST", "/hook", &[], body).await.0,
        401
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), server.state.trigger.notified())
            .await
            .is_err(),
        "a rejected hook must not trigger a fetch"
    );
    let metrics = server.state.metrics.render();
    assert!(
        metrics.contains("gitops_webhook_requests_total{outcome=\"rejected\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gitops_webhook_requests_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn gitlab_hook_and_unconfigured_hook() {
    let server = start(Some(SECRET), false).await;
    let ok = request(
        server.addr,
        "POST",
        "/hook",
        &[("X-Gitlab-Token", "hook-s3cret")],
        b"{}",
    )
    .await;
    assert_eq!(ok.0, 202);
    let bad = request(
        server.addr,
        "POST",
        "/hook",
        &[("X-Gitlab-Token", "guess")],
        b"{}",
    )
    .await;
    assert_eq!(bad.0, 401);

    let off = start(None, false).await;
    assert_eq!(
        request(off.addr, "POST", "/hook", &[("X-Gitlab-Token", "x")], b"{}")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn oversized_hook_body_is_refused() {
    let server = start(Some(SECRET), false).await;
    let body = vec![b'a'; Limits::default().max_body + 1];
    let sig = github_signature(SECRET, &body);
    assert_eq!(
        request(
            server.addr,
            "POST",
            "/hook",
            &[("X-Hub-Signature-256", &sig)],
            &body
        )
        .await
        .0,
        413
    );
}
