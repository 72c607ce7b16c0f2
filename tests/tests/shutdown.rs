//! Graceful shutdown: the listener closes (new connections are refused), calls in flight
//! finish, and calls still running at the drain timeout end with UNAVAILABLE.

use sluice::{Config, Overrides, Server};
use sluice_tests::fixture::{Upstream, init_logs};
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::*;
use std::time::{Duration, Instant};

async fn start(
    upstream: &Upstream,
    drain_ms: u64,
    workers: usize,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let dir = std::env::temp_dir().join(format!(
        "sluice-drain-{}-{drain_ms}-{workers}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sluice.toml");
    std::fs::write(&file, format!("[limits]\ndrain_timeout_ms = {drain_ms}\n")).unwrap();
    let config = Config::load(&Overrides {
        config: Some(file),
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(upstream.addr.to_string()),
        ..Overrides::default()
    })
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run_workers(workers, async {
        let _ = stopped.await;
    }));
    (addr, stop, run)
}

fn paced(count: usize, interval_ms: i32) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: (0..count)
            .map(|_| ResponseParameters {
                size: 8,
                interval_us: interval_ms * 1000,
            })
            .collect(),
        payload: None,
        response_status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_and_new_connections_are_refused() {
    init_logs();
    for workers in [1, 3] {
        drain_lets_calls_finish(workers).await;
    }
}

/// With `workers` workers (thread per core when more than one): several client
/// connections (spread over the workers) each work, then a shutdown lets the stream in
/// flight finish while the listener refuses new connections.
async fn drain_lets_calls_finish(workers: usize) {
    let upstream = Upstream::start().await;
    let (addr, stop, run) = start(&upstream, 10_000, workers).await;
    for _ in 0..6 {
        let mut other = TestServiceClient::new(sluice_tests::fixture::channel(addr).await);
        other
            .empty_call(Empty {})
            .await
            .expect("each connection is served");
    }
    let mut client = TestServiceClient::new(sluice_tests::fixture::channel(addr).await);
    let mut stream = client
        .streaming_output_call(paced(5, 200))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    stop.send(()).unwrap();
    // The listener closes at once.
    let started = Instant::now();
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "still accepting after shutdown"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // The call in flight gets all its messages and an OK status.
    let mut received = 1;
    while stream.message().await.expect("stream ends OK").is_some() {
        received += 1;
    }
    assert_eq!(received, 5, "{workers} workers");
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns once drained")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_drain_timeout_end_unavailable() {
    past_the_drain_timeout(paced(20, 200)).await;
}

/// A call waiting on its upstream is woken by the drain timeout, not by its next message
/// (ten seconds away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_call_past_the_drain_timeout_ends_without_waiting_for_its_next_message() {
    let mut request = paced(2, 10_000);
    request.response_parameters[0].interval_us = 0;
    past_the_drain_timeout(request).await;
}

/// Opens `request`'s stream, reads its first message, stops the server (drain timeout
/// 300 ms) and expects the call to end with `UNAVAILABLE` within 3 s.
async fn past_the_drain_timeout(request: StreamingOutputCallRequest) {
    init_logs();
    let upstream = Upstream::start().await;
    let (addr, stop, run) = start(&upstream, 300, 1).await;
    let mut client = TestServiceClient::new(sluice_tests::fixture::channel(addr).await);
    let mut stream = client
        .streaming_output_call(request)
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let started = Instant::now();
    stop.send(()).unwrap();
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended OK, should have been cut by the drain timeout"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns")
        .unwrap();
}
