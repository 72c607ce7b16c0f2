//! Upstream pool: per cluster a set of endpoints, each with a fixed number of HTTP/2
//! connections over which calls are multiplexed. Connections are made lazily (one
//! attempt at a time per connection slot), replaced when they close, and an endpoint
//! whose connects fail is backed off exponentially. A call that never reached an
//! upstream (its connection had closed) is retried on another connection. Endpoints may
//! speak TLS (per cluster) and be health-checked actively (`health` module). Calls open
//! their streams with `h2` directly from their own tasks (`connection`, `pump`).

use crate::config::{Balancing, ClusterConfig, HealthCheck, Limits};
use crate::h2_shared::RecvBody;
use crate::proxy::RequestBody;
use crate::tls::ClientTls;
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use connection::Connection;
use http::{Request, Response};
use http_body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pump::Pump;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

mod connection;
mod health;
mod pump;

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
        /// The stream's error.
        source: h2::Error,
    },
}

/// A TLS or plain TCP connection to an endpoint.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Transport for T {}

/// A cluster: its endpoints and the balancing between them.
#[derive(Debug)]
pub struct Cluster {
    name: Arc<str>,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    balancing: Balancing,
    tls: bool,
    health_check: Option<HealthCheck>,
}

#[derive(Debug)]
struct Endpoint {
    address: Arc<str>,
    slots: Vec<Slot>,
    next_slot: AtomicUsize,
    in_flight: AtomicUsize,
    connects: AtomicU64,
    connect_timeout: Duration,
    /// HTTP/2 windows and keepalive of its connections (the config's, shared).
    limits: Arc<Limits>,
    tls: Option<Arc<ClientTls>>,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Consecutive connect failures (passive ejection with backoff).
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
    /// Taken out of rotation by active health checks.
    unhealthy: bool,
    probe_failures: u32,
    probe_successes: u32,
    last_probe_error: String,
}

/// The states an endpoint can be in, as [`EndpointStats::state`] names them.
pub const ENDPOINT_STATES: [&str; 3] = ["healthy", "backoff", "unhealthy"];

/// A snapshot of one endpoint for metrics.
#[derive(Clone, Debug)]
pub struct EndpointStats {
    /// `host:port`.
    pub address: String,
    /// Connections made so far.
    pub connects: u64,
    /// Pool connections open now.
    pub open: usize,
    /// Calls in flight.
    pub in_flight: usize,
    /// `healthy`, `backoff` (ejected after connect failures) or `unhealthy` (failed
    /// active health checks).
    pub state: &'static str,
}

#[derive(Debug, Default)]
struct Slot {
    ready: ArcSwapOption<Connection>,
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
    pub fn endpoint(&self) -> &Arc<str> {
        &self.0.address
    }
}

impl Cluster {
    /// A cluster from its configuration; nothing connects until the first call. Its
    /// endpoints share `limits` (every cluster of a proxy shares one).
    pub fn new(
        config: &ClusterConfig,
        limits: &Arc<Limits>,
        tls: Option<Arc<ClientTls>>,
    ) -> Cluster {
        Cluster {
            name: config.name.as_str().into(),
            endpoints: config
                .endpoints
                .iter()
                .map(|address| {
                    Arc::new(Endpoint {
                        address: address.as_str().into(),
                        slots: (0..config.connections_per_endpoint)
                            .map(|_| Slot::default())
                            .collect(),
                        next_slot: AtomicUsize::new(0),
                        in_flight: AtomicUsize::new(0),
                        connects: AtomicU64::new(0),
                        connect_timeout: config.connect_timeout,
                        limits: limits.clone(),
                        tls: tls.clone(),
                        health: Mutex::new(Health::default()),
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            balancing: config.balancing,
            tls: tls.is_some(),
            health_check: config.health_check.clone(),
        }
    }

    /// Starts the active health checks, if the cluster has them: one task per endpoint,
    /// ended by aborting the returned handles.
    pub fn start_health_checks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(check) = &self.health_check else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .map(|endpoint| tokio::spawn(health::probe_loop(endpoint.clone(), check.clone())))
            .collect()
    }

    /// The cluster's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Per endpoint: connections, calls in flight and state.
    pub fn endpoint_stats(&self) -> Vec<EndpointStats> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .map(|e| {
                let state = {
                    let health = e.health.lock().expect("health lock");
                    if health.unhealthy {
                        "unhealthy"
                    } else if health.retry_at.is_some_and(|at| now < at) {
                        "backoff"
                    } else {
                        "healthy"
                    }
                };
                EndpointStats {
                    address: e.address.to_string(),
                    connects: e.connects.load(Ordering::Relaxed),
                    open: e
                        .slots
                        .iter()
                        .filter(|s| s.ready.load().as_ref().is_some_and(|c| c.is_open()))
                        .count(),
                    in_flight: e.in_flight.load(Ordering::Relaxed),
                    state,
                }
            })
            .collect()
    }

    /// Sends `request` to an endpoint and waits for the response headers. The request's
    /// body goes out as it comes (see `pump`).
    pub async fn send(
        &self,
        request: Request<RequestBody>,
    ) -> Result<(Response<RecvBody>, InFlight), UpstreamError> {
        let (mut head, body) = request.into_parts();
        if self.tls {
            let mut parts = head.uri.clone().into_parts();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                head.uri = uri;
            }
        }
        let slot_count: usize = self.endpoints.iter().map(|e| e.slots.len()).sum();
        // Built only when an attempt fails: a call that goes through allocates nothing here.
        let mut last_reason = None;
        // Each failed attempt either backs an endpoint off or finds a closed connection,
        // so a bounded number of attempts visits every slot at least once.
        for _ in 0..=slot_count {
            let Some(endpoint) = self.pick() else { break };
            let slot = endpoint.pick_slot();
            let mut sender = match endpoint.sender(slot).await {
                Ok(sender) => sender,
                Err(reason) => {
                    last_reason = Some(reason);
                    continue;
                }
            };
            if let Err(err) = std::future::poll_fn(|cx| sender.poll_ready(cx)).await {
                // The connection ended (or is going away) before the request left: retry.
                slot.ready.store(None);
                last_reason = Some(format!("{}: connection closed: {err}", endpoint.address));
                continue;
            }
            endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(endpoint.clone());
            let end_of_stream = body.is_end_stream();
            let (response, stream) =
                match sender.send_request(Request::from_parts(head, ()), end_of_stream) {
                    Ok(sent) => sent,
                    Err(source) => {
                        return Err(UpstreamError::Request {
                            endpoint: endpoint.address.to_string(),
                            source,
                        });
                    }
                };
            if end_of_stream {
                drop(body);
            } else {
                Pump::new(body, stream).start();
            }
            return match response.await {
                Ok(response) => Ok((response.map(RecvBody::new), guard)),
                Err(source) => Err(UpstreamError::Request {
                    endpoint: endpoint.address.to_string(),
                    source,
                }),
            };
        }
        Err(UpstreamError::Unreachable {
            cluster: self.name.to_string(),
            reason: last_reason.unwrap_or_else(|| "no endpoint tried".to_owned()),
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
        !health.unhealthy && health.retry_at.is_none_or(|at| now >= at)
    }

    /// The next slot in turn; under thread-per-core serving, among the slots of this
    /// worker (slot `i` belongs to worker `i % workers`), so a call and the upstream
    /// connection it uses run on one thread. With fewer slots than workers, any slot.
    fn pick_slot(&self) -> &Slot {
        let turn = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (worker, workers) = crate::worker::current();
        let own = self.slots.len() / workers;
        if workers > 1 && own > 0 {
            &self.slots[(turn % own) * workers + worker]
        } else {
            &self.slots[turn % self.slots.len()]
        }
    }

    /// A live sender on `slot`, connecting (once, for all waiters) if needed.
    async fn sender(&self, slot: &Slot) -> Result<h2::client::SendRequest<Bytes>, String> {
        if let Some(sender) = live(&slot.ready) {
            return Ok(sender);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(sender) = live(&slot.ready) {
            return Ok(sender);
        }
        if !self.usable(Instant::now()) {
            let health = self.health.lock().expect("health lock");
            return Err(if health.unhealthy {
                format!(
                    "{}: failing health checks ({})",
                    self.address, health.last_probe_error
                )
            } else {
                health.last_error.clone()
            });
        }
        // Boxed: the connect future (TCP, TLS, HTTP/2 handshake) is large and rare; inline it
        // would grow every call's future (and the bytes moved per call).
        let connected = Box::pin(async {
            let io = self.transport().await?;
            let handshake = connection::handshake(io, &self.limits, self.address.clone());
            tokio::time::timeout(self.connect_timeout, handshake)
                .await
                .map_err(|_| format!("{}: HTTP/2 handshake timed out", self.address))?
        })
        .await;
        match connected {
            Ok(connection) => {
                self.connects.fetch_add(1, Ordering::Relaxed);
                let mut health = self.health.lock().expect("health lock");
                if health.failures > 0 {
                    tracing::info!(endpoint = %self.address, "upstream endpoint re-admitted: connected after {} failed attempt(s)", health.failures);
                }
                health.failures = 0;
                health.retry_at = None;
                drop(health);
                tracing::debug!(endpoint = %self.address, "upstream connection established");
                let sender = connection.sender().ok_or_else(|| {
                    format!(
                        "{}: connection closed right after its handshake",
                        self.address
                    )
                })?;
                slot.ready.store(Some(connection));
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

    /// A TCP connection, then TLS if the cluster has it, each step under the connect
    /// timeout.
    async fn transport(&self) -> Result<Box<dyn Transport>, String> {
        let address = &self.address;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&**address))
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
        match &self.tls {
            None => Ok(Box::new(stream)),
            Some(tls) => tokio::time::timeout(self.connect_timeout, tls.connect(address, stream))
                .await
                .map_err(|_| format!("{address}: TLS handshake timed out"))?
                .map(|tls| Box::new(tls) as Box<dyn Transport>),
        }
    }

    /// A connection of hyper's own (for the health checks), driven by its own task.
    async fn connect_hyper<B>(&self) -> Result<hyper::client::conn::http2::SendRequest<B>, String>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let address = self.address.clone();
        let io = self.transport().await?;
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io));
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| format!("{address}: HTTP/2 handshake timed out"))?
            .map_err(|err| format!("{address}: HTTP/2 handshake failed: {err}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(endpoint = %address, "health check connection ended: {err}");
            }
        });
        Ok(sender)
    }
}

fn live(ready: &ArcSwapOption<Connection>) -> Option<h2::client::SendRequest<Bytes>> {
    ready.load().as_ref()?.sender()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_their_own_slots() {
        let config = ClusterConfig {
            name: "c".into(),
            endpoints: vec!["127.0.0.1:1".into()],
            connections_per_endpoint: 4,
            connect_timeout: Duration::from_secs(1),
            balancing: Balancing::RoundRobin,
            tls: None,
            health_check: None,
        };
        let cluster = Cluster::new(&config, &Arc::new(Limits::default()), None);
        let endpoint = cluster.endpoints[0].clone();
        let index = |slot: &Slot| {
            endpoint
                .slots
                .iter()
                .position(|s| std::ptr::eq(s, slot))
                .unwrap()
        };
        // Outside thread-per-core serving: every slot in turn.
        let all: Vec<usize> = (0..4).map(|_| index(endpoint.pick_slot())).collect();
        assert_eq!(all, [0, 1, 2, 3]);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                crate::worker::set(1, 2);
                let picked: Vec<usize> = (0..4).map(|_| index(endpoint.pick_slot())).collect();
                assert!(picked.iter().all(|i| i % 2 == 1), "{picked:?}");
                assert!(picked.contains(&1) && picked.contains(&3), "{picked:?}");
            });
        });
    }
}
