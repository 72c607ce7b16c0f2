//! The listener: accepts TCP connections (TCP_NODELAY, a deep backlog), optionally TLS,
//! speaks HTTP/2 (and enough HTTP/1.1 to refuse it clearly) and hands every request to the
//! proxy; on shutdown it drains.

mod balance;
mod connection;
mod preface;
mod stream;

use crate::admin;
use crate::config::{Config, Limits};
use crate::plugin::watcher::{self, Watcher};
use crate::plugin::{PluginSource, Registry, Runtime};
use crate::proxy::Proxy;
use crate::tls::Certificates;
use crate::watch::FolderWatch;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const LISTEN_BACKLOG: u32 = 4096;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The plugin runtime could not start.
    #[error("cannot start the plugin runtime: {0}")]
    Plugins(String),
    /// A folder of certificate files could not be watched.
    #[error("cannot watch the certificate folders: {0}")]
    CertificateWatch(String),
    /// A certificate, key or CA file could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listen address could not be resolved or bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A bound, not yet running, proxy server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    proxy: Arc<Proxy>,
    /// HTTP/2 settings, keepalive, idle and drain timeouts of client connections.
    limits: Arc<Limits>,
    watcher: Option<Watcher>,
    certificate_watcher: Option<FolderWatch>,
}

impl Server {
    /// Binds the listener and prepares the proxy from `config`.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let certificates = Arc::new(Certificates::load(config)?);
        let bind_error = |source| ServerError::Bind {
            address: config.listen.clone(),
            source,
        };
        let address = tokio::net::lookup_host(&config.listen)
            .await
            .map_err(bind_error)?
            .next()
            .ok_or_else(|| bind_error(std::io::Error::other("address resolved to nothing")))?;
        let listener = listen(address).map_err(bind_error)?;
        let registry = match &config.plugins {
            None => Registry::default(),
            Some(dir) => {
                let source = (
                    dir.clone(),
                    config.body_mode,
                    config.plugin_policies.clone(),
                );
                let cache = config.plugin_cache.clone();
                let instances = config.limits.plugin_instances;
                tokio::task::spawn_blocking(move || {
                    let runtime = Runtime::new(cache.as_deref(), instances)
                        .map_err(|e| ServerError::Plugins(e.to_string()))?;
                    let (dir, body_mode, policies) = source;
                    Ok::<_, ServerError>(Registry::open(PluginSource {
                        runtime,
                        dir,
                        body_mode,
                        policies,
                    }))
                })
                .await
                .map_err(|e| ServerError::Plugins(e.to_string()))??
            }
        };
        let registry = Arc::new(registry);
        let watcher = if config.watch_plugins {
            watcher::watch(registry.clone()).map_err(ServerError::Plugins)?
        } else {
            None
        };
        let admin = match &config.admin {
            None => None,
            Some(address) => {
                Some(
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| ServerError::Bind {
                            address: address.clone(),
                            source,
                        })?,
                )
            }
        };
        let certificate_watcher = watch_certificates(&certificates)?;
        Ok(Server {
            listener,
            admin,
            proxy: Arc::new(Proxy::new(config, registry, certificates)),
            limits: Arc::new(config.limits.clone()),
            watcher,
            certificate_watcher,
        })
    }

    /// The address the admin listener is bound to, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The proxy (routes and clusters) this server forwards with.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Serves until `shutdown` completes, then drains: stops accepting, sends GOAWAY on
    /// every connection, lets calls in flight finish for up to the drain timeout, ends the
    /// rest with `UNAVAILABLE`, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_workers(1, shutdown).await;
    }

    /// Like [`Server::run`], thread per core: this task's runtime is worker 0 and runs the
    /// accept loop, each of the other `workers - 1` runs on a thread of its own with a
    /// single-threaded runtime, and every new connection goes to the worker with the fewest
    /// open ones. A connection, its streams and the upstream connections its calls use stay
    /// on that worker's thread, so calls need no cross-thread wake-ups. Call it on a
    /// single-threaded runtime (the `sluice` binary does).
    pub async fn run_workers(self, workers: usize, shutdown: impl Future<Output = ()>) {
        let workers = workers.max(1);
        crate::worker::set(0, workers);
        let counters = tokio::spawn(log_plugin_counters(self.proxy.registry().clone()));
        let admin = self
            .admin
            .map(|listener| tokio::spawn(admin::serve(listener, self.proxy.clone())));
        let health_checks: Vec<_> = self
            .proxy
            .clusters()
            .iter()
            .flat_map(|cluster| cluster.start_health_checks())
            .collect();
        let _watchers = (self.watcher, self.certificate_watcher);
        let connections = TaskTracker::new();
        let shared = connection::Shared {
            limits: self.limits.clone(),
            proxy: self.proxy.clone(),
            tls: self.proxy.certificates().listener().cloned(),
            stop: CancellationToken::new(),
        };
        let counts = self
            .proxy
            .serve_with(Arc::new(crate::worker::WorkerConnections::new(workers)));
        let (mut balancer, inboxes) = balance::Balancer::new(counts);
        for (index, inbox) in (1..workers).zip(inboxes) {
            spawn_worker(index, workers, inbox, &shared, &connections);
        }
        accept_loop(
            &self.listener,
            &mut balancer,
            &shared,
            &connections,
            shutdown,
        )
        .await;
        // Closes the workers' inboxes: they stop taking connections.
        drop(balancer);
        drop(self.listener);
        // Drain: no new connections; GOAWAY on the open ones; calls in flight may finish.
        let drain_timeout = self.limits.drain_timeout;
        tracing::info!(?drain_timeout, "shutting down: draining calls in flight");
        shared.stop.cancel();
        connections.close();
        let all_closed = connections.wait();
        tokio::pin!(all_closed);
        tokio::select! {
            () = &mut all_closed => tracing::info!("drained: every connection closed"),
            () = tokio::time::sleep(drain_timeout) => {
                tracing::warn!("drain timeout passed: ending the remaining calls with UNAVAILABLE");
                self.proxy.end_remaining_calls();
                // Let the UNAVAILABLE trailers go out.
                let _ = tokio::time::timeout(DRAIN_FLUSH, &mut all_closed).await;
            }
        }
        for check in health_checks {
            check.abort();
        }
        counters.abort();
        if let Some(admin) = admin {
            admin.abort();
        }
    }
}

/// Accepts connections until `shutdown` completes (or `shared.stop` is cancelled) and
/// hands each to the worker with the fewest open connections (this thread's runtime
/// serves worker 0's).
async fn accept_loop(
    listener: &TcpListener,
    balancer: &mut balance::Balancer,
    shared: &connection::Shared,
    connections: &TaskTracker,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: log, pause, go on.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {err}");
        }
        if let balance::Assigned::Here(stream, open) = balancer.assign(stream, peer) {
            connections.spawn(serve_counted(shared.clone(), stream, peer, open));
        }
    }
}

/// Serves one connection, counted against its worker until it closes.
async fn serve_counted(
    shared: connection::Shared,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    _open: balance::OpenConnection,
) {
    connection::serve(shared, stream, peer).await;
}

/// Starts worker `index`: a thread with a single-threaded runtime serving the connections
/// that arrive in `inbox` until the server stops, then staying up while they drain.
fn spawn_worker(
    index: usize,
    workers: usize,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<balance::Handoff>,
    shared: &connection::Shared,
    connections: &TaskTracker,
) {
    let (shared, connections) = (shared.clone(), connections.clone());
    let started = std::thread::Builder::new()
        .name(format!("sluice-worker-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    tracing::error!(worker = index, "cannot start a worker runtime: {err}");
                    return;
                }
            };
            crate::worker::set(index, workers);
            runtime.block_on(async move {
                // Until the accept loop ends (it drops the balancer, closing this inbox,
                // before the server's stop is cancelled).
                while let Some(handoff) = inbox.recv().await {
                    let balance::Handoff { stream, peer, open } = handoff;
                    match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => {
                            connections.spawn(serve_counted(shared.clone(), stream, peer, open));
                        }
                        Err(err) => tracing::warn!(worker = index, %peer, "cannot serve a connection: {err}"),
                    }
                }
                // Keep this runtime (and the connections it drives) up until all closed.
                connections.wait().await;
            });
        });
    if let Err(err) = started {
        tracing::error!(worker = index, "cannot start a worker thread: {err}");
    }
}

/// After the drain timeout, how long the ended calls get to flush their status.
const DRAIN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// How often changed plugin counters are logged.
const COUNTER_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs each plugin's counters (from its `counter-add` calls) when they changed.
async fn log_plugin_counters(registry: Arc<Registry>) {
    let mut last = std::collections::HashMap::new();
    let mut ticker = tokio::time::interval(COUNTER_LOG_INTERVAL);
    loop {
        ticker.tick().await;
        for plugin in registry.snapshot().plugins() {
            let now = plugin.counters().snapshot();
            if !now.is_empty() && last.get(plugin.name()) != Some(&now) {
                tracing::info!(plugin = plugin.name(), counters = ?now, "plugin counters");
                last.insert(plugin.name().to_owned(), now);
            }
        }
    }
}

/// Watches the folders of every certificate, key and CA file in use and reloads them all
/// after a change; `None` without TLS.
fn watch_certificates(
    certificates: &Arc<Certificates>,
) -> Result<Option<FolderWatch>, ServerError> {
    if certificates.is_empty() {
        return Ok(None);
    }
    let folders: Vec<_> = certificates
        .paths()
        .iter()
        .map(|path| match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => std::path::PathBuf::from("."),
        })
        .collect();
    let weak = Arc::downgrade(certificates);
    crate::watch::watch_folders("certificate folders", &folders, move || {
        let Some(certificates) = weak.upgrade() else {
            return false;
        };
        certificates.reload();
        true
    })
    .map(Some)
    .map_err(ServerError::CertificateWatch)
}

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
