//! One client connection: optional TLS handshake, then HTTP/2 served with `h2` directly
//! (or a refused HTTP/1.1, by its first bytes), keepalive pings, an idle timeout (no call
//! open for that long: GOAWAY and close) and a graceful close when the server stops.

use super::{preface, stream};
use crate::config::Limits;
use crate::h2_shared::silent_peer;
use crate::proxy::Proxy;
use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client may take to send the request that is then refused.
const HTTP1_REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP/2 server side of a client connection, as `limits` set it.
fn http2_builder(limits: &Limits) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_window_size(limits.stream_window_bytes)
        .initial_connection_window_size(limits.connection_window_bytes)
        .max_header_list_size(limits.max_header_list_bytes)
        .max_pending_accept_reset_streams(1024)
        .max_local_error_reset_streams(Some(1024));
    builder
}

/// What every connection shares.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    /// HTTP/2 settings, keepalive and idle timeout.
    pub limits: Arc<Limits>,
    pub proxy: Arc<Proxy>,
    pub tls: Option<Arc<crate::tls::ServerTls>>,
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
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let activity = Arc::new(Activity {
        open_calls: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
    });
    // A client that connects and says nothing is closed when the idle timeout passes.
    let (io, is_http2) = tokio::select! {
        read = preface::read(io) => match read {
            Ok(read) => read,
            Err(err) => {
                tracing::debug!(%peer, "client connection ended before its first request: {err}");
                return;
            }
        },
        () = shared.stop.cancelled() => return,
        () = activity.idled_out(shared.limits.idle_timeout) => {
            tracing::debug!(%peer, "closing a client connection that sent nothing");
            return;
        }
    };
    if is_http2 {
        serve_http2(&shared, io, peer, &activity).await;
    } else {
        refuse_http1(&shared, io, peer).await;
    }
}

/// Serves the streams of an HTTP/2 connection, each in a task of its own.
async fn serve_http2<Io>(shared: &Shared, io: Io, peer: SocketAddr, activity: &Arc<Activity>)
where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let handshake = http2_builder(&shared.limits).handshake::<_, Bytes>(io);
    let mut connection = tokio::select! {
        handshake = handshake => match handshake {
            Ok(connection) => connection,
            Err(err) => {
                tracing::debug!(%peer, "HTTP/2 handshake failed: {err}");
                return;
            }
        },
        () = shared.stop.cancelled() => return,
        () = activity.idled_out(shared.limits.idle_timeout) => return,
    };
    let silent = silent_peer(
        connection.ping_pong(),
        shared.limits.keepalive_interval,
        shared.limits.keepalive_timeout,
    );
    // Made once, not once per stream accepted: waiting on either registers with a timer
    // or the server's stop token.
    let stopped = shared.stop.cancelled();
    let idle = activity.idled_out(shared.limits.idle_timeout);
    tokio::pin!(silent, stopped, idle);
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    let open = OpenCall::new(activity.clone());
                    // Boxed: the call's future is large, and spawning moves it several times.
                    tokio::spawn(Box::pin(stream::serve(
                        shared.proxy.clone(),
                        request,
                        respond,
                        open,
                    )));
                }
                Some(Err(err)) => {
                    tracing::debug!(%peer, "client connection ended: {err}");
                    return;
                }
                None => return,
            },
            reason = &mut silent => {
                tracing::info!(%peer, "closing a client connection: {reason}");
                return;
            }
            () = &mut stopped, if !closing => {
                closing = true;
                connection.graceful_shutdown();
            }
            () = &mut idle, if !closing => {
                tracing::debug!(%peer, "closing an idle client connection");
                closing = true;
                connection.graceful_shutdown();
            }
        }
    }
}

/// Answers an HTTP/1 request with `505 HTTP Version Not Supported` and closes the
/// connection (also when no whole request comes within [`HTTP1_REFUSAL_TIMEOUT`]).
async fn refuse_http1<Io>(shared: &Shared, io: Io, peer: SocketAddr)
where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = service_fn(|_request| async { Ok::<_, Infallible>(Proxy::refuse_http1()) });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        result = tokio::time::timeout(HTTP1_REFUSAL_TIMEOUT, connection) => match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%peer, "HTTP/1 client connection ended: {err}"),
            Err(_) => tracing::debug!(%peer, "closing an HTTP/1 client connection that stalled"),
        },
        () = shared.stop.cancelled() => {}
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
pub(super) struct OpenCall(Arc<Activity>);

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
