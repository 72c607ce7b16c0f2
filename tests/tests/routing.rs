//! Routing and upstream pooling: routes pick clusters by precedence, an unknown method is
//! UNIMPLEMENTED, a dead endpoint is UNAVAILABLE within the connect timeout, calls spread
//! over endpoints, and the pool recovers when an upstream comes back.

use sluice::Overrides;
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::helloworld::HelloRequest;
use sluice_tests::pb::helloworld::greeter_client::GreeterClient;
use sluice_tests::pb::testing::Empty;
use std::time::{Duration, Instant};

#[tokio::test]
async fn routes_pick_clusters_by_precedence() {
    init_logs();
    let greeter_upstream = Upstream::start().await;
    let test_upstream = Upstream::start().await;
    let proxy = Proxy::start(Overrides {
        routes: vec![
            format!("/helloworld.Greeter/*={}", greeter_upstream.addr),
            format!(
                "/sluice.testing.TestService/EmptyCall={}",
                test_upstream.addr
            ),
        ],
        ..Overrides::default()
    })
    .await;
    let channel = sluice_tests::fixture::channel(proxy.addr).await;
    let reply = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "route".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello, route!");
    assert_eq!(greeter_upstream.connections(), 1);
    assert_eq!(test_upstream.connections(), 0);

    let mut client = proxy.client().await;
    client.empty_call(Empty {}).await.unwrap();
    assert_eq!(test_upstream.connections(), 1);

    // No `*` route: another method of the same service has no route.
    let status = client
        .unary_call(sluice_tests::pb::testing::SimpleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("/sluice.testing.TestService/UnaryCall"),
        "{status:?}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable_within_the_connect_timeout() {
    init_logs();
    // A port nothing listens on (bound, then released).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(Overrides {
        upstream: Some(dead.to_string()),
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    for _ in 0..3 {
        let started = Instant::now();
        let status = client.empty_call(Empty {}).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains(&dead.to_string()), "{status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }
}

/// An address that never answers SYNs is bounded by the connect timeout, not the OS's.
#[tokio::test]
async fn blackholed_endpoint_is_bounded_by_the_connect_timeout() {
    init_logs();
    // A listener whose backlog is full: further connects hang in SYN_SENT.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let dir = std::env::temp_dir().join(format!("sluice-blackhole-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("sluice.toml");
    std::fs::write(
        &config_path,
        format!(
            "[clusters.slow]\nendpoints = [\"{addr}\"]\nconnect_timeout_ms = 300\n[[routes]]\nmatch = \"*\"\ncluster = \"slow\"\n"
        ),
    )
    .unwrap();
    let proxy = Proxy::start(Overrides {
        config: Some(config_path),
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    let started = Instant::now();
    let status = client.empty_call(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn calls_spread_over_endpoints_and_skip_a_dead_one() {
    init_logs();
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(Overrides {
        routes: vec![format!("*={},{},{}", a.addr, b.addr, dead)],
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    for i in 0..60 {
        client
            .empty_call(Empty {})
            .await
            .unwrap_or_else(|s| panic!("call {i} failed: {s}"));
    }
    let (calls_a, calls_b) = (a.calls(), b.calls());
    assert_eq!(calls_a + calls_b, 60);
    assert!(
        calls_a >= 15 && calls_b >= 15,
        "unbalanced: {calls_a} / {calls_b}"
    );
}

#[tokio::test]
async fn pool_reconnects_when_the_upstream_comes_back() {
    init_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = Upstream::serve(listener).await;
    let proxy = Proxy::start(Overrides {
        upstream: Some(addr.to_string()),
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    client.empty_call(Empty {}).await.unwrap();
    drop(upstream);
    // Down: calls fail fast with UNAVAILABLE.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = client.empty_call(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // Back on the same port: within the backoff the pool reconnects.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let upstream = Upstream::serve(listener).await;
    let started = Instant::now();
    loop {
        match client.empty_call(Empty {}).await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable);
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no recovery: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(upstream.connections() >= 1);
}
