//! Upstream health: active `grpc.health.v1.Health/Check` probes take a NOT_SERVING endpoint
//! out of rotation and put it back when it serves again; passive ejection backs off an
//! endpoint whose connects fail and re-admits it once it accepts again.

use sluice::{Config, Overrides};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::Empty;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic_health::ServingStatus;

fn states(proxy: &Proxy) -> Vec<(String, &'static str)> {
    proxy.proxy.clusters()[0]
        .endpoint_stats()
        .into_iter()
        .map(|e| (e.address, e.state))
        .collect()
}

async fn wait_for_state(proxy: &Proxy, endpoint: &str, state: &str) {
    let started = Instant::now();
    loop {
        let now = states(proxy);
        if now.iter().any(|(a, s)| a == endpoint && *s == state) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{endpoint} never became {state}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn active_checks_take_a_not_serving_endpoint_out_and_back() {
    init_logs();
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[[routes]]\nmatch = \"*\"\ncluster = \"pair\"\n\
         [clusters.pair]\nendpoints = [\"{}\", \"{}\"]\n\
         [clusters.pair.health_check]\ninterval_ms = 50\ntimeout_ms = 500\nunhealthy_threshold = 2\nhealthy_threshold = 2\n",
        a.addr, b.addr
    );
    let config = Config::from_toml(&toml, Path::new("t.toml"), &Overrides::default()).unwrap();
    let proxy = Proxy::from_config(config).await;
    let mut client = proxy.client().await;
    let b_addr = b.addr.to_string();

    b.health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    wait_for_state(&proxy, &b_addr, "unhealthy").await;
    let before = b.calls();
    for _ in 0..20 {
        client
            .empty_call(Empty {})
            .await
            .expect("served by the healthy endpoint");
    }
    assert_eq!(b.calls(), before, "calls reached the unhealthy endpoint");

    b.health
        .set_service_status("", ServingStatus::Serving)
        .await;
    wait_for_state(&proxy, &b_addr, "healthy").await;
    for _ in 0..20 {
        client.empty_call(Empty {}).await.unwrap();
    }
    assert!(
        b.calls() >= before + 5,
        "the endpoint did not get calls back"
    );
}

#[tokio::test]
async fn a_dead_endpoint_is_ejected_and_readmitted() {
    init_logs();
    let a = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = listener.local_addr().unwrap();
    drop(listener); // nothing listens there yet
    let proxy = Proxy::start(Overrides {
        routes: vec![format!("*={},{}", a.addr, b_addr)],
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    for _ in 0..10 {
        client
            .empty_call(Empty {})
            .await
            .expect("the live endpoint serves");
    }
    assert!(
        states(&proxy).contains(&(b_addr.to_string(), "backoff")),
        "{:?}",
        states(&proxy)
    );
    // The endpoint comes up: after its backoff it is tried again and takes calls.
    let b = Upstream::serve(tokio::net::TcpListener::bind(b_addr).await.unwrap()).await;
    let started = Instant::now();
    while b.calls() == 0 {
        client.empty_call(Empty {}).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never re-admitted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_state(&proxy, &b_addr.to_string(), "healthy").await;
}

#[test]
fn health_check_settings_are_validated() {
    for (toml, key) in [
        ("interval_ms = 0", "clusters.c.health_check.interval_ms"),
        (
            "healthy_threshold = 0",
            "clusters.c.health_check.healthy_threshold",
        ),
        ("intervl_ms = 5", "intervl_ms"),
    ] {
        let text = format!(
            "[clusters.c]\nendpoints = [\"127.0.0.1:1\"]\n[clusters.c.health_check]\n{toml}\n"
        );
        let err = Config::from_toml(&text, Path::new("t.toml"), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}
