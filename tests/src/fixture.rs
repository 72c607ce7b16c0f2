//! Running parts for tests: a tonic upstream on 127.0.0.1 that counts the TCP connections
//! it accepts (and answers `grpc.health.v1` checks), and an in-process `sluice` server,
//! each stopped when dropped.

use crate::greeter::HelloGreeter;
use crate::pb::testing::test_service_client::TestServiceClient;
use crate::test_service::{Observed, Service};
use sluice::{BodyMode, Config, Overrides, Server};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// A running tonic upstream serving the test service and the greeter.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// TCP connections it has accepted.
    pub accepted: Arc<AtomicUsize>,
    /// What the test service saw.
    pub observed: Arc<Observed>,
    /// Its `grpc.health.v1.Health` status (the whole server, `""`, starts `SERVING`).
    pub health: tonic_health::server::HealthReporter,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// Starts an upstream on a free loopback port.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Upstream::serve(listener).await
    }

    /// Starts an upstream on `listener`.
    pub async fn serve(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().expect("upstream address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |conn| {
            counter.fetch_add(1, Ordering::Relaxed);
            conn.inspect(|stream| {
                let _ = stream.set_nodelay(true);
            })
        });
        let service = Service::default();
        let observed = service.observed.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let (health, health_service) = tonic_health::server::health_reporter();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(service.into_server())
            .add_service(HelloGreeter.into_server())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Upstream {
            addr,
            accepted,
            observed,
            health,
            _stop: stop,
        }
    }

    /// Calls the test service received so far.
    pub fn calls(&self) -> usize {
        self.observed.calls.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// A running in-process proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The proxy state (clusters, for connection counts).
    pub proxy: Arc<sluice::proxy::Proxy>,
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    /// Starts a proxy on a free port forwarding every method to `upstream` in `mode`.
    pub async fn to(upstream: SocketAddr, mode: BodyMode) -> Proxy {
        Proxy::start(Overrides {
            upstream: Some(upstream.to_string()),
            body_mode: Some(mode),
            ..Overrides::default()
        })
        .await
    }

    /// Starts a proxy with these settings (the listen address is forced to a free port).
    pub async fn start(overrides: Overrides) -> Proxy {
        let config = Config::load(&Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..overrides
        })
        .expect("valid test config");
        Proxy::from_config(config).await
    }

    /// Starts a proxy from a full configuration.
    pub async fn from_config(config: Config) -> Proxy {
        let server = Server::bind(&config).await.expect("bind proxy");
        let addr = server.local_addr();
        let proxy = server.proxy().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Proxy {
            addr,
            proxy,
            _stop: stop,
        }
    }

    /// Names of the plugins in force, in chain order.
    pub fn plugin_names(&self) -> Vec<String> {
        self.proxy
            .registry()
            .snapshot()
            .plugins()
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    }

    /// A tonic client of the test service through this proxy.
    pub async fn client(&self) -> TestServiceClient<Channel> {
        TestServiceClient::new(channel(self.addr).await)
    }
}

/// A tonic channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect")
}

/// Both body paths, for tests that must hold on each.
pub const BODY_MODES: [BodyMode; 2] = [BodyMode::Raw, BodyMode::Message];

/// Logs to the test output (once per process), filtered by `RUST_LOG` (default: warn).
pub fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
