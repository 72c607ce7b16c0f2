//! All four call kinds through the proxy on both body paths, independent half-closes,
//! 1,000 concurrent streams on one client connection, and connection pooling.

use futures_util::StreamExt;
use sluice_tests::fixture::{BODY_MODES, Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::*;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| ResponseParameters {
            size,
            interval_us: 0,
        })
        .collect()
}

fn payload(len: usize) -> Option<Payload> {
    Some(Payload {
        body: vec![1u8; len],
    })
}

#[tokio::test]
async fn unary_on_both_paths() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        client.empty_call(Empty {}).await.unwrap();
        for size in [0usize, 1, 64, 16 * 1024, 1024 * 1024] {
            let response = client
                .unary_call(SimpleRequest {
                    response_size: size as i32,
                    payload: payload(size),
                    response_status: None,
                })
                .await
                .unwrap_or_else(|s| panic!("{mode:?} size {size}: {s}"));
            assert_eq!(
                response.into_inner().payload.unwrap().body.len(),
                size,
                "{mode:?}"
            );
        }
    }
}

#[tokio::test]
async fn client_streaming_on_both_paths() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let sizes = [27_182usize, 8, 1_828, 45_904];
        let requests = tokio_stream::iter(sizes.map(|n| StreamingInputCallRequest {
            payload: payload(n),
        }));
        let response = client.streaming_input_call(requests).await.unwrap();
        assert_eq!(
            response.into_inner().aggregated_payload_size,
            74_922,
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn server_streaming_on_both_paths() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let sizes = [31_415, 9, 2_653, 58_979];
        let mut stream = client
            .streaming_output_call(StreamingOutputCallRequest {
                response_parameters: params(&sizes),
                payload: None,
                response_status: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        while let Some(message) = stream.message().await.unwrap() {
            got.push(message.payload.unwrap().body.len() as i32);
        }
        assert_eq!(got, sizes, "{mode:?}");
    }
}

#[tokio::test]
async fn bidi_ping_pong_on_both_paths() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut responses = client
            .full_duplex_call(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        for size in [31_415, 9, 2_653, 58_979] {
            tx.send(StreamingOutputCallRequest {
                response_parameters: params(&[size]),
                payload: payload(size as usize / 2),
                response_status: None,
            })
            .await
            .unwrap();
            let reply = responses
                .message()
                .await
                .unwrap()
                .expect("a reply per ping");
            assert_eq!(reply.payload.unwrap().body.len(), size as usize, "{mode:?}");
        }
        drop(tx);
        assert!(responses.message().await.unwrap().is_none(), "{mode:?}");
    }
}

/// The server keeps streaming after the client half-closed, and the client keeps sending
/// while the server has nothing to say.
#[tokio::test]
async fn directions_are_independent() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        // Client sends three messages asking for nothing, then one asking for ten paced
        // replies, then half-closes at once; all ten replies must still arrive.
        let mut requests: Vec<StreamingOutputCallRequest> = (0..3)
            .map(|_| StreamingOutputCallRequest {
                response_parameters: vec![],
                payload: payload(10),
                response_status: None,
            })
            .collect();
        requests.push(StreamingOutputCallRequest {
            response_parameters: (0..10)
                .map(|_| ResponseParameters {
                    size: 100,
                    interval_us: 5_000,
                })
                .collect(),
            payload: None,
            response_status: None,
        });
        let mut responses = client
            .full_duplex_call(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut count = 0;
        while let Some(reply) = responses.message().await.unwrap() {
            assert_eq!(reply.payload.unwrap().body.len(), 100);
            count += 1;
        }
        assert_eq!(count, 10, "{mode:?}");
    }
}

/// 1,000 concurrent bidi streams on one client connection, all open at the same time,
/// over a handful of upstream connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_streams_share_pooled_connections() {
    init_logs();
    const STREAMS: usize = 1_000;
    for mode in BODY_MODES {
        let upstream = Upstream::start().await;
        let proxy = Proxy::to(upstream.addr, mode).await;
        let client = proxy.client().await;
        let all_open = std::sync::Arc::new(tokio::sync::Barrier::new(STREAMS));
        let mut tasks = Vec::new();
        for i in 0..STREAMS {
            let mut client = client.clone();
            let all_open = all_open.clone();
            tasks.push(tokio::spawn(async move {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let mut responses = client
                    .full_duplex_call(ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                let ping = |size| StreamingOutputCallRequest {
                    response_parameters: params(&[size]),
                    payload: None,
                    response_status: None,
                };
                tx.send(ping(i as i32 % 100)).await.unwrap();
                let first = responses.message().await?.expect("first reply");
                assert_eq!(first.payload.unwrap().body.len(), i % 100);
                // Every stream is open now; wait for all, then finish.
                all_open.wait().await;
                tx.send(ping(7)).await.unwrap();
                drop(tx);
                let second = responses.message().await?.expect("second reply");
                assert_eq!(second.payload.unwrap().body.len(), 7);
                assert!(responses.message().await?.is_none());
                Ok::<_, tonic::Status>(())
            }));
        }
        let results = tokio::time::timeout(
            Duration::from_secs(60),
            futures_util::future::join_all(tasks),
        )
        .await
        .expect("1,000 streams finish in time");
        let failures: Vec<String> = results
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                Ok(()) => None,
                Err(status) => Some(status.to_string()),
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{mode:?}: {} failed, first: {:?}",
            failures.len(),
            failures.first()
        );
        let connections = upstream.connections();
        println!("{mode:?}: {STREAMS} concurrent streams used {connections} upstream connections");
        assert!(
            (1..=2).contains(&connections),
            "{mode:?}: expected the 2 pooled connections at most, upstream accepted {connections}"
        );
    }
}

/// Many sequential calls reuse the pool: no TCP connection per call.
#[tokio::test]
async fn sequential_calls_reuse_connections() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, sluice::BodyMode::Raw).await;
    let mut client = proxy.client().await;
    for _ in 0..200 {
        client.empty_call(Empty {}).await.unwrap();
    }
    let streams = futures_util::stream::iter(0..200)
        .map(|_| {
            let mut client = client.clone();
            async move { client.empty_call(Empty {}).await }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    assert!(streams.iter().all(Result::is_ok));
    assert!(
        upstream.connections() <= 2,
        "upstream accepted {}",
        upstream.connections()
    );
    let counted: u64 = proxy.proxy.clusters()[0]
        .endpoint_stats()
        .iter()
        .map(|stats| stats.connects)
        .sum();
    assert_eq!(counted as usize, upstream.connections());
}
