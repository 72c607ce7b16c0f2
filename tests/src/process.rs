//! The `sluice` binary as a child process of a test: started on a free port, signalled by
//! its PID, killed (only it) when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A `sluice` child process, killed when dropped.
#[derive(Debug)]
pub struct Sluice {
    /// The process.
    pub child: Child,
    /// Its gRPC listen address.
    pub listen: SocketAddr,
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

impl Sluice {
    /// Starts the binary with `--listen` on a free port plus `configure`'s settings.
    pub fn spawn(configure: impl FnOnce(&mut Command)) -> Sluice {
        let listen = free_addr();
        let mut command = Command::new(crate::plugins::sluice_binary());
        command.arg("--listen").arg(listen.to_string());
        configure(&mut command);
        let child = command.spawn().expect("start sluice");
        Sluice { child, listen }
    }

    /// A channel to it, once it accepts connections (up to 20 s).
    pub async fn channel(&self) -> Channel {
        let started = Instant::now();
        loop {
            match Channel::from_shared(format!("http://{}", self.listen))
                .expect("valid uri")
                .connect()
                .await
            {
                Ok(channel) => return channel,
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("sluice did not start: {err}"),
            }
        }
    }

    /// Sends signal `name` (`HUP`, `TERM`, ...) to this process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if started.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
