//! The `sluice` binary reloads its plugin folder on SIGHUP (tested with the watcher off, so
//! only the signal can cause the reload) and exits on SIGTERM.

use sluice_tests::fixture::{Upstream, init_logs};
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::*;
use sluice_tests::plugins::PluginDir;
use sluice_tests::process::Sluice;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_plugins_and_sigterm_stops() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[]);
    let mut sluice = Sluice::spawn(|command| {
        command
            .args([
                "--upstream",
                &upstream.addr.to_string(),
                "--no-watch",
                "--plugins",
            ])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
    });
    let mut client = TestServiceClient::new(sluice.channel().await);
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
    sluice.signal("HUP");
    let started = Instant::now();
    while tag(&client.empty_call(Empty {}).await.unwrap()).as_deref() != Some("hup") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    sluice.signal("TERM");
    let status = sluice.exit_within(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "sluice did not exit 0 on SIGTERM: {status:?}"
    );
}
