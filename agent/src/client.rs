//! The agent's API clients, and with `--leader-elect` the fence on the wire.
//!
//! The fence checks before each write ([`crate::reconcile::cluster::Cluster::check_fence`])
//! leave a window: a replica frozen after the check but before its request reached the socket
//! (a new connection's TLS handshake, a request queued for a pooled connection) sends it when it
//! wakes, after another replica took over (issue #14: one stale delete in a few runs of
//! `fault_leader`). So the requests client asks the fence again from inside the request body,
//! which hyper polls on the connection task as it writes the request: a write whose lease ran
//! out goes out as headers without a body, which the API server rejects without acting on it.
//! What remains is the instant between that poll and the write system call; only a fence the
//! API server checks would close it, and Kubernetes has none (a Lease is advisory).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request};
use http_body::{Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::{ClientBuilder, ConfigExt};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::ServiceBuilder;

use crate::fence::Fence;
use crate::{Config, Error};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Clients {
    /// Reads and writes, each with the `--api-timeout` deadline; writes fenced.
    pub requests: kube::Client,
    /// Watches, which the server ends itself (kube's watcher has its own idle timeout).
    pub watches: kube::Client,
    /// The Lease: never fenced, or a replica whose lease ran out could not win it back.
    pub election: kube::Client,
    /// Closed until the first renewal with `--leader-elect`; open otherwise.
    pub fence: Fence,
}

/// Clients from `--kubeconfig`/KUBECONFIG, else the in-cluster service account.
pub async fn kube_clients(config: &Config) -> Result<Clients, Error> {
    let err = |e: &dyn std::fmt::Display| Error::Client(e.to_string());
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| err(&format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(&e))?
        }
        None => kube::Config::incluster().map_err(|e| err(&e))?,
    };
    let mut requests = kube_config.clone();
    requests.connect_timeout = Some(config.api_timeout);
    requests.read_timeout = Some(config.api_timeout);
    requests.write_timeout = Some(config.api_timeout);
    requests.reset_reader_on_write = true;
    // Bounded retries of 429/503/504 happen in `reconcile::cluster::retrying`; kube's own
    // (15 attempts up to 1000 s apart) stalled syncs for minutes after an API server restart.
    requests.default_retry = false;
    let mut watches = kube_config;
    watches.connect_timeout = Some(config.api_timeout);
    watches.default_retry = false;
    let election = kube::Client::try_from(requests.clone()).map_err(|e| err(&e))?;
    let (fence, fenced) = if config.leader_elect {
        let fence = Fence::elected();
        (fence.clone(), fenced_client(&requests, fence)?)
    } else {
        (Fence::open(), election.clone())
    };
    Ok(Clients {
        requests: fenced,
        watches: kube::Client::try_from(watches).map_err(|e| err(&e))?,
        election,
        fence,
    })
}

/// kube's own stack (base URI, auth, extra headers, rustls, timeouts) over a hyper client whose
/// request bodies are [`FencedBody`]; kube's body type cannot be wrapped from outside its crate.
fn fenced_client(config: &kube::Config, fence: Fence) -> Result<kube::Client, Error> {
    let err = |e: &dyn std::fmt::Display| Error::Client(e.to_string());
    if let Some(proxy) = &config.proxy_url {
        return Err(Error::Config(format!(
            "--leader-elect with a proxy ({proxy}) in the kubeconfig is not supported"
        )));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let tls = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| err(&e))?;
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper: hyper_util::client::legacy::Client<_, FencedBody> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(|e| err(&e))?)
        .layer(config.extra_headers_layer().map_err(|e| err(&e))?)
        .map_request(move |req: Request<kube::client::Body>| {
            let fenced = is_write(&req).then(|| fence.clone());
            req.map(|body| FencedBody {
                inner: body,
                fence: fenced,
            })
        })
        .map_err(|e: hyper_util::client::legacy::Error| -> BoxError { Box::new(e) })
        .service(hyper);
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// A request that changes something: not a read, and not a server-side dry run.
fn is_write<B>(req: &Request<B>) -> bool {
    let method = req.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return false;
    }
    !req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "dryRun=All"))
}

/// A request body that asks the fence before yielding its bytes (every body kube sends for a
/// write is one frame, so the first poll is the one that matters).
struct FencedBody {
    inner: kube::client::Body,
    /// `None` for reads and dry runs, and once asked.
    fence: Option<Fence>,
}

impl http_body::Body for FencedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(fence) = self.fence.take()
            && let Err(fenced) = fence.check()
        {
            tracing::warn!(error = %fenced, "a write was stopped on its way out");
            return Poll::Ready(Some(Err(Box::new(fenced))));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn request(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn writes_are_everything_but_reads_and_dry_runs() {
        let cm = "/api/v1/namespaces/a/configmaps/x";
        assert!(is_write(&request(Method::DELETE, cm)));
        assert!(is_write(&request(
            Method::PATCH,
            &format!("{cm}?fieldManager=gitops&force=true")
        )));
        assert!(is_write(&request(
            Method::POST,
            "/api/v1/namespaces/a/events"
        )));
        assert!(!is_write(&request(Method::GET, cm)));
        assert!(!is_write(&request(
            Method::PATCH,
            &format!("{cm}?dryRun=All&fieldManager=gitops")
        )));
        // Only the exact parameter counts.
        assert!(is_write(&request(
            Method::PATCH,
            &format!("{cm}?xdryRun=All")
        )));
    }

    #[tokio::test]
    async fn a_body_yields_nothing_once_the_lease_ran_out() {
        let fence = Fence::elected();
        fence.renewed(
            std::time::Instant::now(),
            std::time::Duration::from_secs(60),
        );
        let open = FencedBody {
            inner: kube::client::Body::from(b"{}".to_vec()),
            fence: Some(fence.clone()),
        };
        assert_eq!(open.collect().await.unwrap().to_bytes(), &b"{}"[..]);
        fence.revoke();
        let closed = FencedBody {
            inner: kube::client::Body::from(b"{}".to_vec()),
            fence: Some(fence.clone()),
        };
        let e = closed.collect().await.unwrap_err().to_string();
        assert!(e.contains("another replica holds the lease"), "{e}");
        let read = FencedBody {
            inner: kube::client::Body::from(b"{}".to_vec()),
            fence: None,
        };
        assert!(read.collect().await.is_ok());
    }
}
