//! Spreads accepted connections over the worker threads: each new connection goes to the
//! worker with the fewest open ones, so a handful of busy clients cannot all land on one
//! thread while the other idles (what happens when every worker races for the same
//! listener).

use crate::worker::WorkerConnections;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A connection handed to a worker thread: the socket (taken off the accepting thread's
/// reactor), the peer and its place in that worker's count.
#[derive(Debug)]
pub(super) struct Handoff {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub open: OpenConnection,
}

/// Where accepted connections go.
#[derive(Debug)]
pub(super) struct Balancer {
    /// Open connections per worker; worker 0 is the accepting thread itself.
    open: Arc<WorkerConnections>,
    /// The inbox of every worker but the first (index `i` is worker `i + 1`).
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
    /// Where the search for the least busy worker starts, so ties go round.
    next: usize,
}

/// What [`Balancer::assign`] decided.
#[derive(Debug)]
pub(super) enum Assigned {
    /// Serve it on this thread.
    Here(tokio::net::TcpStream, OpenConnection),
    /// Not for this thread: handed to another worker (or closed, when handing it over
    /// failed; logged).
    Sent,
}

impl Balancer {
    /// A balancer keeping count in `open` (one count per worker) and the inboxes of
    /// workers `1..`.
    pub fn new(open: Arc<WorkerConnections>) -> (Balancer, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (inboxes, receivers) = (1..open.workers())
            .map(|_| mpsc::unbounded_channel())
            .unzip();
        let balancer = Balancer {
            open,
            inboxes,
            next: 0,
        };
        (balancer, receivers)
    }

    /// The worker with the fewest open connections; among equals, the one after the last
    /// pick.
    fn least_busy(&mut self) -> usize {
        let workers = self.open.workers();
        let start = self.next;
        let pick = (0..workers)
            .map(|step| (start + step) % workers)
            .min_by_key(|&worker| self.open.open(worker))
            .unwrap_or(0);
        self.next = (pick + 1) % workers;
        pick
    }

    /// Sends `stream` to the least busy worker, or returns it to be served here (when that
    /// is this thread, or the chosen worker is gone).
    pub fn assign(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) -> Assigned {
        let worker = self.least_busy();
        let open = OpenConnection::new(self.open.clone(), worker);
        if worker == 0 {
            return Assigned::Here(stream, open);
        }
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(%peer, "cannot hand a connection to worker {worker}: {err}");
                return Assigned::Sent;
            }
        };
        match self.inboxes[worker - 1].send(Handoff { stream, peer, open }) {
            Ok(()) => Assigned::Sent,
            Err(mpsc::error::SendError(handoff)) => {
                tracing::warn!(%peer, "worker {worker} is gone: serving its connection here");
                match tokio::net::TcpStream::from_std(handoff.stream) {
                    Ok(stream) => Assigned::Here(stream, OpenConnection::new(self.open.clone(), 0)),
                    Err(err) => {
                        tracing::warn!(%peer, "cannot serve a connection: {err}");
                        Assigned::Sent
                    }
                }
            }
        }
    }
}

/// One open connection counted against its worker until dropped.
#[derive(Debug)]
pub(super) struct OpenConnection {
    counts: Arc<WorkerConnections>,
    worker: usize,
}

impl OpenConnection {
    fn new(counts: Arc<WorkerConnections>, worker: usize) -> OpenConnection {
        counts.opened(worker);
        OpenConnection { counts, worker }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counts.closed(self.worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connected_pair(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
        let address = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Keep the client end open for as long as the test runs.
        std::mem::forget(client);
        server
    }

    #[tokio::test]
    async fn connections_go_to_the_worker_with_fewest_open() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let counts = Arc::new(WorkerConnections::new(3));
        let (mut balancer, mut inboxes) = Balancer::new(counts.clone());
        let mut here = Vec::new();
        for _ in 0..6 {
            match balancer.assign(connected_pair(&listener).await, peer) {
                Assigned::Here(_, open) => here.push(open),
                Assigned::Sent => {}
            }
        }
        // Two each, round the three workers.
        assert_eq!(here.len(), 2);
        let mut first: Vec<_> = std::iter::from_fn(|| inboxes[0].try_recv().ok()).collect();
        let second: Vec<_> = std::iter::from_fn(|| inboxes[1].try_recv().ok()).collect();
        assert_eq!((first.len(), second.len()), (2, 2));
        assert_eq!(
            (0..3).map(|w| counts.open(w)).collect::<Vec<_>>(),
            [2, 2, 2]
        );
        // Worker 1 closes both of its connections: the next two go there.
        first.clear();
        for _ in 0..2 {
            assert!(matches!(
                balancer.assign(connected_pair(&listener).await, peer),
                Assigned::Sent
            ));
        }
        assert_eq!(std::iter::from_fn(|| inboxes[0].try_recv().ok()).count(), 2);
        assert!(inboxes[1].try_recv().is_err());
        drop(second);
        drop(here);
        assert_eq!(
            (0..3).map(|w| counts.open(w)).collect::<Vec<_>>(),
            [0, 0, 0]
        );
    }

    #[tokio::test]
    async fn a_gone_worker_gets_no_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (mut balancer, inboxes) = Balancer::new(Arc::new(WorkerConnections::new(2)));
        drop(inboxes);
        for _ in 0..3 {
            assert!(matches!(
                balancer.assign(connected_pair(&listener).await, peer),
                Assigned::Here(..)
            ));
        }
    }
}
