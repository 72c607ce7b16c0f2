//! A TCP relay that behaves like a NAT or load balancer with an idle timeout: it forwards
//! bytes both ways and cuts the connection when neither side sent anything for a while.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A running relay.
#[derive(Debug)]
pub struct Middlebox {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Connections it cut for being idle.
    pub cut: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Middlebox {
    /// Relays to `target`, cutting connections idle for `idle_cutoff`.
    pub async fn start(target: SocketAddr, idle_cutoff: Duration) -> Middlebox {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let cut = Arc::new(AtomicUsize::new(0));
        let counter = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                tokio::spawn(relay(inbound, outbound, idle_cutoff, counter.clone()));
            }
        });
        Middlebox { addr, cut, task }
    }
}

async fn relay(a: TcpStream, b: TcpStream, idle_cutoff: Duration, cut: Arc<AtomicUsize>) {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let last = Arc::new(std::sync::Mutex::new(Instant::now()));
    let forward = copy(a_read, b_write, last.clone());
    let backward = copy(b_read, a_write, last.clone());
    let watchdog = async {
        loop {
            let deadline = *last.lock().unwrap() + idle_cutoff;
            tokio::time::sleep_until(deadline).await;
            if last.lock().unwrap().elapsed() >= idle_cutoff {
                cut.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    // Whichever ends first, both sockets close when this returns.
    tokio::select! {
        () = forward => {}
        () = backward => {}
        () = watchdog => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    last: Arc<std::sync::Mutex<Instant>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                *last.lock().unwrap() = Instant::now();
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
