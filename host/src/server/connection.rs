//! One client connection: optional TLS handshake, HTTP/2 (or a refused HTTP/1.1), an idle
//! timeout (no call open for that long: GOAWAY and close) and a graceful close when the
//! server stops.

use crate::proxy::Proxy;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection shares.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub http: Arc<auto::Builder<TokioExecutor>>,
    pub proxy: Arc<Proxy>,
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    pub idle_timeout: Option<Duration>,
    /// Cancelled when the server stops: connections send GOAWAY and finish their calls.
    pub stop: CancellationToken,
}

/// Serves `stream` until the client closes it, it idles out, or the server stops.
pub(super) async fn serve(shared: Shared, stream: TcpStream, peer: SocketAddr) {
    match shared.tls.clone() {
        None => serve_http(shared, stream, peer).await,
        Some(tls) => {
            let handshake =
                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
            let stream = tokio::select! {
                () = shared.stop.cancelled() => return,
                result = handshake => match result {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::info!(%peer, "TLS handshake failed: {err}");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
            };
            serve_http(shared, stream, peer).await;
        }
    }
}

async fn serve_http<Io>(shared: Shared, io: Io, peer: SocketAddr)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity {
        open_calls: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
    });
    let proxy = shared.proxy.clone();
    let calls = activity.clone();
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        let open = OpenCall::new(calls.clone());
        async move {
            let response = proxy.handle(request).await;
            Ok::<_, Infallible>(response.map(|body| Tracked {
                inner: body,
                _open: open,
            }))
        }
    });
    let connection = shared
        .http
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, "client connection ended: {err}");
                }
                return;
            }
            () = shared.stop.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.idled_out(shared.idle_timeout), if !closing => {
                tracing::debug!(%peer, "closing an idle client connection");
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Calls open on one connection, and since when none is.
#[derive(Debug)]
struct Activity {
    open_calls: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    /// Completes once no call has been open for `timeout`; never if `None`.
    async fn idled_out(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline = *self.idle_since.lock().expect("idle lock") + timeout;
            tokio::time::sleep_until(deadline).await;
            if self.open_calls.load(Ordering::Acquire) > 0 {
                // Busy: look again a timeout from now (the last call to end moves idle_since).
                tokio::time::sleep(timeout).await;
                continue;
            }
            let idle_since = *self.idle_since.lock().expect("idle lock");
            if idle_since + timeout <= Instant::now() {
                return;
            }
        }
    }
}

/// One open call; the connection is idle when none is left.
#[derive(Debug)]
struct OpenCall(Arc<Activity>);

impl OpenCall {
    fn new(activity: Arc<Activity>) -> OpenCall {
        activity.open_calls.fetch_add(1, Ordering::AcqRel);
        OpenCall(activity)
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        if self.0.open_calls.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().expect("idle lock") = Instant::now();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its call counted as open until hyper drops it.
    #[derive(Debug)]
    struct Tracked<B> {
        #[pin]
        inner: B,
        _open: OpenCall,
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
