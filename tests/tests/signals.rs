//! The `sluice` binary reloads its plugin folder on SIGHUP (tested with the watcher off, so
//! only the signal can cause the reload) and exits on SIGTERM.

use sluice_tests::fixture::{Upstream, init_logs};
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::*;
use sluice_tests::plugins::PluginDir;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::plugins::sluice_binary as binary;

/// Signals the child this test started, by its PID.
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_plugins_and_sigterm_stops() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(binary())
        .args([
            "--listen",
            &listen,
            "--upstream",
            &upstream.addr.to_string(),
            "--no-watch",
            "--plugins",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let started = Instant::now();
    let channel = loop {
        match tonic::transport::Channel::from_shared(format!("http://{listen}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("sluice did not start: {err}"),
        }
    };
    let mut client = TestServiceClient::new(channel);
    let tag = |response: &tonic::Response<Empty>| {
        response
            .metadata()
            .get("x-response-chain")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(tag(&client.empty_call(Empty {}).await.unwrap()), None);

    dir.put("10-tag.toml", b"hup");
    dir.put_plugin("10-tag.wasm", "chain_tag");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        tag(&client.empty_call(Empty {}).await.unwrap()),
        None,
        "--no-watch: no reload without a signal"
    );
    signal(&child.0, "HUP");
    let started = Instant::now();
    while tag(&client.empty_call(Empty {}).await.unwrap()).as_deref() != Some("hup") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    signal(&child.0, "TERM");
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sluice did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
