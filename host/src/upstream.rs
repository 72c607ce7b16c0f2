//! Upstream pool: per cluster a set of endpoints, each with a fixed number of HTTP/2
//! connections over which calls are multiplexed. Connections are made lazily (one
//! attempt at a time per connection slot), replaced when they close, and an endpoint
//! whose connects fail is backed off exponentially. A call that never reached an
//! upstream (its connection had closed) is retried on another connection.

use crate::config::{Balancing, ClusterConfig, Limits};
use crate::proxy::RequestBody;
use arc_swap::ArcSwapOption;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a call could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No endpoint of the cluster could be reached.
    #[error("cluster {cluster}: no endpoint reachable ({reason})")]
    Unreachable {
        /// Cluster name.
        cluster: String,
        /// The last connect error.
        reason: String,
    },
    /// The request was sent and failed (reset, connection lost).
    #[error("upstream {endpoint}: {source}")]
    Request {
        /// The endpoint it was sent to.
        endpoint: String,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// HTTP/2 settings for upstream connections.
#[derive(Clone, Debug)]
struct Http2Settings {
    stream_window: u32,
    connection_window: u32,
    keepalive_interval: Option<Duration>,
    keepalive_timeout: Duration,
}

/// A cluster: its endpoints and the balancing between them.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    balancing: Balancing,
}

#[derive(Debug)]
struct Endpoint {
    address: String,
    slots: Vec<Slot>,
    next_slot: AtomicUsize,
    in_flight: AtomicUsize,
    connects: AtomicU64,
    connect_timeout: Duration,
    http2: Http2Settings,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

#[derive(Debug, Default)]
struct Slot {
    ready: ArcSwapOption<SendRequest<RequestBody>>,
    connecting: tokio::sync::Mutex<()>,
}

/// Counts a call as in flight on an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    /// The endpoint's `host:port`.
    pub fn endpoint(&self) -> &str {
        &self.0.address
    }
}

impl Cluster {
    /// A cluster from its configuration; nothing connects until the first call.
    pub fn new(config: &ClusterConfig, limits: &Limits) -> Cluster {
        let http2 = Http2Settings {
            stream_window: limits.stream_window_bytes,
            connection_window: limits.connection_window_bytes,
            keepalive_interval: limits.keepalive_interval,
            keepalive_timeout: limits.keepalive_timeout,
        };
        Cluster {
            name: config.name.clone(),
            endpoints: config
                .endpoints
                .iter()
                .map(|address| {
                    Arc::new(Endpoint {
                        address: address.clone(),
                        slots: (0..config.connections_per_endpoint)
                            .map(|_| Slot::default())
                            .collect(),
                        next_slot: AtomicUsize::new(0),
                        in_flight: AtomicUsize::new(0),
                        connects: AtomicU64::new(0),
                        connect_timeout: config.connect_timeout,
                        http2: http2.clone(),
                        health: Mutex::new(Health::default()),
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            balancing: config.balancing,
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Per endpoint: address, TCP connections made so far, calls in flight.
    pub fn endpoint_stats(&self) -> Vec<(String, u64, usize)> {
        self.endpoints
            .iter()
            .map(|e| {
                (
                    e.address.clone(),
                    e.connects.load(Ordering::Relaxed),
                    e.in_flight.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Sends `request` to an endpoint and waits for the response headers.
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, InFlight), UpstreamError> {
        let slot_count: usize = self.endpoints.iter().map(|e| e.slots.len()).sum();
        let mut last_reason = String::from("no endpoint tried");
        // Each failed attempt either backs an endpoint off or finds a closed connection,
        // so a bounded number of attempts visits every slot at least once.
        for _ in 0..=slot_count {
            let Some(endpoint) = self.pick() else { break };
            let slot = endpoint.pick_slot();
            let mut sender = match endpoint.sender(slot).await {
                Ok(sender) => sender,
                Err(reason) => {
                    last_reason = reason;
                    continue;
                }
            };
            endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(endpoint.clone());
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, guard)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => {
                        // The connection closed before the request left: retry elsewhere.
                        slot.ready.store(None);
                        last_reason = format!("{}: connection closed", endpoint.address);
                        request = unsent;
                    }
                    None => {
                        return Err(UpstreamError::Request {
                            endpoint: endpoint.address.clone(),
                            source: err.into_error(),
                        });
                    }
                },
            }
        }
        Err(UpstreamError::Unreachable {
            cluster: self.name.clone(),
            reason: last_reason,
        })
    }

    /// Picks an endpoint that is not backed off, or `None` if all are.
    fn pick(&self) -> Option<&Arc<Endpoint>> {
        let now = Instant::now();
        let count = self.endpoints.len();
        let usable = |e: &Arc<Endpoint>| e.usable(now);
        match self.balancing {
            Balancing::PowerOfTwoChoices if count > 1 => {
                let a = &self.endpoints[fastrand::usize(..count)];
                let b = &self.endpoints[fastrand::usize(..count)];
                match (usable(a), usable(b)) {
                    (true, true) => Some(
                        if b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed)
                        {
                            b
                        } else {
                            a
                        },
                    ),
                    (true, false) => Some(a),
                    (false, true) => Some(b),
                    (false, false) => self.endpoints.iter().find(|e| usable(e)),
                }
            }
            _ => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..count)
                    .map(|i| &self.endpoints[(start + i) % count])
                    .find(|e| usable(e))
            }
        }
    }
}

impl Endpoint {
    fn usable(&self, now: Instant) -> bool {
        let health = self.health.lock().expect("health lock");
        health.retry_at.is_none_or(|at| now >= at)
    }

    fn pick_slot(&self) -> &Slot {
        let i = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        &self.slots[i]
    }

    /// A live sender on `slot`, connecting (once, for all waiters) if needed.
    async fn sender(&self, slot: &Slot) -> Result<SendRequest<RequestBody>, String> {
        if let Some(sender) = live(&slot.ready) {
            return Ok(sender);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(sender) = live(&slot.ready) {
            return Ok(sender);
        }
        if !self.usable(Instant::now()) {
            return Err(self.health.lock().expect("health lock").last_error.clone());
        }
        match self.connect().await {
            Ok(sender) => {
                *self.health.lock().expect("health lock") = Health::default();
                slot.ready.store(Some(Arc::new(sender.clone())));
                Ok(sender)
            }
            Err(reason) => {
                let mut health = self.health.lock().expect("health lock");
                health.failures = health.failures.saturating_add(1);
                let backoff = BACKOFF_START
                    .saturating_mul(1 << health.failures.min(10))
                    .min(BACKOFF_MAX);
                health.retry_at = Some(Instant::now() + backoff);
                health.last_error = reason.clone();
                tracing::warn!(endpoint = %self.address, failures = health.failures, retry_in_ms = backoff.as_millis() as u64, "upstream connect failed: {reason}");
                Err(reason)
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, String> {
        let address = &self.address;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                format!(
                    "{address}: connect timed out after {:?}",
                    self.connect_timeout
                )
            })?
            .map_err(|err| format!("{address}: connect failed: {err}"))?;
        stream
            .set_nodelay(true)
            .map_err(|err| format!("{address}: set TCP_NODELAY: {err}"))?;
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(self.http2.stream_window)
            .initial_connection_window_size(self.http2.connection_window)
            .max_concurrent_reset_streams(1024)
            .keep_alive_interval(self.http2.keepalive_interval)
            .keep_alive_timeout(self.http2.keepalive_timeout)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| format!("{address}: HTTP/2 handshake timed out"))?
            .map_err(|err| format!("{address}: HTTP/2 handshake failed: {err}"))?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        let address = address.clone();
        tokio::spawn(async move {
            match connection.await {
                Ok(()) => tracing::debug!(endpoint = %address, "upstream connection closed"),
                Err(err) => tracing::info!(endpoint = %address, "upstream connection ended: {err}"),
            }
        });
        tracing::debug!(endpoint = %self.address, "upstream connection established");
        Ok(sender)
    }
}

fn live(ready: &ArcSwapOption<SendRequest<RequestBody>>) -> Option<SendRequest<RequestBody>> {
    let guard = ready.load();
    let sender = guard.as_ref()?;
    if sender.is_closed() {
        None
    } else {
        Some(SendRequest::clone(sender))
    }
}
