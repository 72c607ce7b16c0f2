//! Metrics after known traffic: calls by method and status, durations, bytes, upstream
//! connections — scraped from the admin listener and parsed, the counts must match.

use sluice::{Config, Overrides, Server};
use sluice_tests::fixture::{Upstream, init_logs};
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(admin: std::net::SocketAddr) -> HashMap<String, f64> {
    let mut tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("HTTP/") && l.contains(' '))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic() {
    init_logs();
    let upstream = Upstream::start().await;
    let config = Config::load(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        routes: vec![format!("/sluice.testing.TestService/*={}", upstream.addr)],
        ..Overrides::default()
    })
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let channel = sluice_tests::fixture::channel(addr).await;
    let mut client = TestServiceClient::new(channel.clone());
    for _ in 0..5 {
        client.empty_call(Empty {}).await.unwrap();
    }
    for _ in 0..2 {
        let status = client
            .unary_call(SimpleRequest {
                response_size: 100,
                payload: Some(Payload {
                    body: vec![0; 1000],
                }),
                response_status: Some(EchoStatus {
                    code: 9,
                    message: "no".into(),
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
    let mut unrouted =
        sluice_tests::pb::testing::unimplemented_service_client::UnimplementedServiceClient::new(
            channel,
        );
    unrouted.unimplemented_call(Empty {}).await.unwrap_err();

    let want = [
        (
            "sluice_calls_total{method=\"/sluice.testing.TestService/EmptyCall\",code=\"0\"}",
            5.0,
        ),
        (
            "sluice_calls_total{method=\"/sluice.testing.TestService/UnaryCall\",code=\"9\"}",
            2.0,
        ),
        (
            "sluice_calls_total{method=\"/sluice.testing.UnimplementedService/UnimplementedCall\",code=\"12\"}",
            1.0,
        ),
        ("sluice_call_duration_seconds_count", 8.0),
        // The pool's two connections, made once.
        (
            &*format!(
                "sluice_upstream_connections_total{{cluster=\"{0}\",endpoint=\"{0}\"}}",
                upstream.addr
            ),
            2.0,
        ),
    ];
    let started = Instant::now();
    let metrics = loop {
        let metrics = scrape(admin).await;
        if want
            .iter()
            .all(|(name, value)| metrics.get(*name) == Some(value))
        {
            break metrics;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "metrics never matched {want:?}:\n{metrics:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        metrics["sluice_body_bytes_total{direction=\"in\"}"] >= 2000.0,
        "{metrics:#?}"
    );
    assert!(
        metrics["sluice_body_bytes_total{direction=\"out\"}"] >= 10.0,
        "{metrics:#?}"
    );
}
