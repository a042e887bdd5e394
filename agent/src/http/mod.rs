//! The agent's HTTP endpoints: `/healthz`, `/readyz`, `/metrics` and `POST /hook`.

mod limits;
pub mod webhook;

pub use limits::Limits;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use webhook::{
    GITHUB_SIGNATURE_HEADER, GITLAB_TOKEN_HEADER, WebhookError, authenticate, github_signature,
};

use crate::metrics::{Metrics, WebhookOutcome};

/// What `/readyz` reports: ready once a reconcile has been attempted, while the last one could
/// reach the API server, while this replica holds the lease (or no lease is needed), and while
/// the last successful reconcile (or the start, before any) is at most `unready_after` old.
/// `/healthz` fails when one reconcile attempt has run longer than `unready_after`: frozen.
#[derive(Debug)]
pub struct Readiness {
    attempted: AtomicBool,
    api_reachable: AtomicBool,
    leading: AtomicBool,
    unready_after: Duration,
    last_success: std::sync::Mutex<Instant>,
    attempt_started: std::sync::Mutex<Option<Instant>>,
}

impl Readiness {
    pub fn new(lease_needed: bool, unready_after: Duration) -> Self {
        Self {
            attempted: AtomicBool::new(false),
            api_reachable: AtomicBool::new(true),
            leading: AtomicBool::new(!lease_needed),
            unready_after,
            last_success: std::sync::Mutex::new(Instant::now()),
            attempt_started: std::sync::Mutex::new(None),
        }
    }

    pub fn start_attempt(&self) {
        *self
            .attempt_started
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Called after each completed reconcile attempt.
    pub fn finish_attempt(&self, succeeded: bool) {
        *self
            .attempt_started
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if succeeded {
            *self.last_success.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        self.mark_attempted();
    }

    /// Whether the last success is older than the bound.
    pub fn is_stale(&self) -> bool {
        self.last_success
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            > self.unready_after
    }

    /// False when an attempt has been running longer than the bound: the loop is stuck.
    pub fn is_live(&self) -> bool {
        self.attempt_started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() <= self.unready_after)
    }

    /// Called after each completed reconcile attempt (whatever its result).
    pub fn mark_attempted(&self) {
        self.attempted.store(true, Ordering::Release);
    }

    /// Whether the last reconcile got answers from the API server (a Git or content failure
    /// still counts as reachable: the agent is doing its job, and says why in status).
    pub fn set_api_reachable(&self, reachable: bool) {
        self.api_reachable.store(reachable, Ordering::Release);
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.attempted.load(Ordering::Acquire)
            && self.api_reachable.load(Ordering::Acquire)
            && self.leading.load(Ordering::Acquire)
            && !self.is_stale()
    }
}

/// Everything the handlers share with the rest of the agent.
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// `None`: `/hook` answers 404.
    pub webhook_secret: Option<Vec<u8>>,
    /// Notified on every authenticated hook; the reconcile loop fetches at once.
    pub trigger: Arc<Notify>,
}

/// Serves on `listener` until `shutdown` completes, with the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, Limits::default()).await
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) -> std::io::Result<()> {
    let admission = limits::Admission::new(limits);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = admission.admit(peer.ip()) else {
            tracing::debug!(%peer, "HTTP connection refused: too many open");
            drop(stream);
            continue;
        };
        let state = state.clone();
        let limits = admission.limits().clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (body_timeout, max_body) = (limits.body_timeout, limits.max_body);
            let service = service_fn(move |req| handle(state.clone(), req, body_timeout, max_body));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.lifetime, conn).await {
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error")
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTP connection closed: open longer than its lifetime")
                }
                Ok(Ok(())) => {}
            }
        });
    }
}

async fn handle(
    state: Arc<HttpState>,
    req: Request<Incoming>,
    body_timeout: Duration,
    max_body: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") if state.readiness.is_live() => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/healthz") => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not live: a reconcile attempt has run longer than --unready-after\n",
        ),
        (&Method::GET, "/readyz") if state.readiness.is_ready() => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") if state.readiness.is_stale() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful reconcile within --unready-after (see the status on the parent ConfigMap kubectl-gitops)\n",
        ),
        (&Method::GET, "/readyz") => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no reconcile attempted yet, the API server unreachable, or not the leader\n",
        ),
        (&Method::GET, "/metrics") => {
            let mut r = text(StatusCode::OK, state.metrics.render());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::POST, "/hook") => hook(&state, req, body_timeout, max_body).await,
        (_, "/healthz" | "/readyz" | "/metrics" | "/hook") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

async fn hook(
    state: &HttpState,
    req: Request<Incoming>,
    body_timeout: Duration,
    max_body: usize,
) -> Response<Full<Bytes>> {
    let Some(secret) = &state.webhook_secret else {
        return text(StatusCode::NOT_FOUND, "webhook not configured\n");
    };
    let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes().to_vec());
    let (github, gitlab) = (header(GITHUB_SIGNATURE_HEADER), header(GITLAB_TOKEN_HEADER));
    let read = Limited::new(req.into_body(), max_body).collect();
    let body = match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or unreadable\n",
            );
        }
        Err(_) => {
            state.metrics.record_webhook(WebhookOutcome::Rejected);
            return text(StatusCode::REQUEST_TIMEOUT, "body not received in time\n");
        }
    };
    match authenticate(secret, &body, github.as_deref(), gitlab.as_deref()) {
        Ok(()) => {
            state.metrics.record_webhook(WebhookOutcome::Accepted);
            state.trigger.notify_one();
            text(StatusCode::ACCEPTED, "fetch triggered\n")
        }
        Err(e) => {
            state.metrics.record_webhook(WebhookOutcome::Rejected);
            tracing::warn!(error = %e, "rejected webhook");
            text(StatusCode::UNAUTHORIZED, format!("{e}\n"))
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod slow_tests;
