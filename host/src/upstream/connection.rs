//! One pooled HTTP/2 connection to an upstream endpoint, driven by `h2` directly: the
//! handshake with the configured windows, and the task that drives the connection, sends its
//! keepalive pings and marks it closed when it ends. Calls open streams on it from their
//! own tasks (no dispatch channel between a call and the connection).

use crate::config::Limits;
use crate::h2_shared::silent_peer;
use bytes::Bytes;
use h2::client::SendRequest;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest header list accepted from an upstream (what hyper's client allowed before).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Bytes a stream may queue beyond what the upstream's window lets out.
const MAX_SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Streams opened before the upstream's SETTINGS say how many it takes.
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// A live connection: the handle calls open streams with, and whether it has ended.
#[derive(Debug)]
pub(super) struct Connection {
    sender: SendRequest<Bytes>,
    closed: AtomicBool,
}

impl Connection {
    /// A handle to open a stream with, unless the connection has ended.
    pub fn sender(&self) -> Option<SendRequest<Bytes>> {
        self.is_open().then(|| self.sender.clone())
    }

    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }
}

/// The HTTP/2 handshake on `io`; the connection is then driven by a task of its own.
pub(super) async fn handshake<Io>(
    io: Io,
    limits: &Limits,
    address: Arc<str>,
) -> Result<Arc<Connection>, String>
where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, mut driver) = h2::client::Builder::new()
        .initial_window_size(limits.stream_window_bytes)
        .initial_connection_window_size(limits.connection_window_bytes)
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .max_send_buffer_size(MAX_SEND_BUFFER_BYTES)
        .max_concurrent_reset_streams(1024)
        .enable_push(false)
        .handshake::<Io, Bytes>(io)
        .await
        .map_err(|err| format!("{address}: HTTP/2 handshake failed: {err}"))?;
    let connection = Arc::new(Connection {
        sender,
        closed: AtomicBool::new(false),
    });
    let silent = silent_peer(
        driver.ping_pong(),
        limits.keepalive_interval,
        limits.keepalive_timeout,
    );
    let shared = connection.clone();
    tokio::spawn(async move {
        // With keepalive, the connection is given up when a pong does not come back in time.
        let ended = tokio::select! {
            ended = &mut driver => ended.map_err(|err| err.to_string()),
            reason = silent => Err(reason),
        };
        shared.closed.store(true, Ordering::Release);
        match ended {
            Ok(()) => tracing::debug!(endpoint = %address, "upstream connection closed"),
            Err(reason) => {
                tracing::info!(endpoint = %address, "upstream connection ended: {reason}")
            }
        }
        // Dropping the driver closes the socket; streams still open fail.
    });
    Ok(connection)
}
