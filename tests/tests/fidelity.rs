//! The proxy is faithful: metadata (`-bin`, repeated keys), status and trailers, trailers-only
//! responses, deadlines (forwarded minus time spent, and enforced), cancellation in both
//! directions, and compressed messages.

use sluice::BodyMode;
use sluice_tests::fixture::{BODY_MODES, Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::*;
use sluice_tests::raw::{self, ScriptedUpstream};
use std::time::{Duration, Instant};
use tonic::metadata::{BinaryMetadataValue, MetadataValue};

fn stream_request(sizes: &[i32], interval_us: i32) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters { size, interval_us })
            .collect(),
        payload: None,
        response_status: None,
    }
}

#[tokio::test]
async fn metadata_round_trips_with_binary_and_repeated_keys() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let mut request = tonic::Request::new(stream_request(&[1], 0));
        let md = request.metadata_mut();
        md.append("x-echo-plain", MetadataValue::from_static("one"));
        md.append("x-echo-plain", MetadataValue::from_static("two"));
        md.append_bin(
            "x-echo-blob-bin",
            BinaryMetadataValue::from_bytes(&[0, 255, 10, 13]),
        );
        md.append("x-trailer-t", MetadataValue::from_static("tail"));
        md.append_bin(
            "x-trailer-b-bin",
            BinaryMetadataValue::from_bytes(&[1, 2, 3, 0xfe]),
        );
        let response = client.streaming_output_call(request).await.unwrap();
        let headers = response.metadata().clone();
        let plain: Vec<_> = headers
            .get_all("x-echo-plain")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(plain, ["one", "two"], "{mode:?}");
        assert_eq!(
            headers
                .get_bin("x-echo-blob-bin")
                .unwrap()
                .to_bytes()
                .unwrap()
                .as_ref(),
            [0, 255, 10, 13],
            "{mode:?}"
        );
        let mut stream = response.into_inner();
        while stream.message().await.unwrap().is_some() {}
        let trailers = stream.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("x-trailer-t").unwrap(), "tail", "{mode:?}");
        assert_eq!(
            trailers
                .get_bin("x-trailer-b-bin")
                .unwrap()
                .to_bytes()
                .unwrap()
                .as_ref(),
            [1, 2, 3, 0xfe],
            "{mode:?}"
        );
    }
}

#[tokio::test]
async fn status_code_message_and_trailing_metadata_pass_through() {
    init_logs();
    let upstream = Upstream::start().await;
    let special = "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n";
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        for (code, message) in [(2, "test status message"), (9, special), (16, "")] {
            let mut request = tonic::Request::new(SimpleRequest {
                response_size: 1,
                payload: None,
                response_status: Some(EchoStatus {
                    code,
                    message: message.into(),
                }),
            });
            request.metadata_mut().append_bin(
                "x-trailer-e-bin",
                BinaryMetadataValue::from_bytes(b"\x00why"),
            );
            let status = client.unary_call(request).await.unwrap_err();
            assert_eq!(status.code() as i32, code, "{mode:?}");
            assert_eq!(status.message(), message, "{mode:?}");
            assert_eq!(
                status
                    .metadata()
                    .get_bin("x-trailer-e-bin")
                    .unwrap()
                    .to_bytes()
                    .unwrap()
                    .as_ref(),
                b"\x00why",
                "{mode:?}"
            );
        }
        // A streaming call that ends with an error after some messages.
        let mut request = stream_request(&[5, 5], 0);
        request.response_status = Some(EchoStatus {
            code: 10,
            message: "aborted late".into(),
        });
        let mut stream = client
            .streaming_output_call(request)
            .await
            .unwrap()
            .into_inner();
        assert!(stream.message().await.unwrap().is_some());
        assert!(stream.message().await.unwrap().is_some());
        let status = stream.message().await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (tonic::Code::Aborted, "aborted late"),
            "{mode:?}"
        );
    }
}

/// A status sent in the response headers (trailers-only) stays trailers-only.
#[tokio::test]
async fn trailers_only_responses_stay_trailers_only() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = raw::connect(proxy.addr).await;
        // tonic answers an unknown service with a trailers-only UNIMPLEMENTED.
        let response = raw::call(
            &mut client,
            raw::grpc_request(
                "/sluice.testing.UnimplementedService/UnimplementedCall",
                &[],
            ),
            &[raw::frame(b"")],
            true,
        )
        .await;
        assert_eq!(response.status, 200);
        assert!(response.headers_ended_stream, "{mode:?}: {response:?}");
        assert_eq!(response.grpc_status(), Some(12), "{mode:?}");
        assert!(response.trailers.is_none());
    }
}

#[tokio::test]
async fn deadline_is_forwarded_minus_time_spent() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let mut request = tonic::Request::new(Empty {});
        request.set_timeout(Duration::from_secs(5));
        client.empty_call(request).await.unwrap();
        let seen = upstream
            .observed
            .timeouts
            .lock()
            .unwrap()
            .pop()
            .expect("upstream saw grpc-timeout");
        let forwarded = sluice::grpc::timeout::parse(seen.as_bytes()).unwrap();
        assert!(forwarded <= Duration::from_secs(5), "{mode:?}: {seen}");
        assert!(forwarded > Duration::from_secs(4), "{mode:?}: {seen}");
    }
}

/// An upstream that never answers: the proxy ends the call with DEADLINE_EXCEEDED at the
/// deadline and resets the upstream stream.
#[tokio::test]
async fn deadline_is_enforced_and_the_upstream_is_cancelled() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = raw::connect(proxy.addr).await;
        let resets_before = upstream.resets.lock().unwrap().len();
        let started = Instant::now();
        let response = raw::call(
            &mut client,
            raw::grpc_request("/any.Service/Stall", &[("grpc-timeout", "200m")]),
            &[raw::frame(b"x")],
            true,
        )
        .await;
        let took = started.elapsed();
        assert_eq!(response.grpc_status(), Some(4), "{mode:?}: {response:?}");
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(3),
            "{mode:?}: took {took:?}"
        );
        wait_for(|| upstream.resets.lock().unwrap().len() > resets_before).await;
        assert_eq!(
            upstream.resets.lock().unwrap().last(),
            Some(&h2::Reason::CANCEL)
        );
        let headers = upstream.requests.lock().unwrap().last().cloned().unwrap();
        let forwarded = sluice::grpc::timeout::parse(headers["grpc-timeout"].as_bytes()).unwrap();
        assert!(
            forwarded <= Duration::from_millis(200),
            "{mode:?}: {forwarded:?}"
        );
    }
}

/// A deadline that passes mid-stream ends the stream with DEADLINE_EXCEEDED in the trailers.
#[tokio::test]
async fn deadline_mid_stream_ends_with_deadline_exceeded() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut client = raw::connect(proxy.addr).await;
    // The upstream never answers; the client keeps its side open.
    let response = raw::call(
        &mut client,
        raw::grpc_request("/any.Service/Stall", &[("grpc-timeout", "100m")]),
        &[raw::frame(b"x")],
        false,
    )
    .await;
    assert_eq!(response.grpc_status(), Some(4), "{response:?}");
}

#[tokio::test]
async fn client_cancel_reaches_the_upstream() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy.client().await;
        let before = upstream
            .observed
            .cancelled
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut stream = client
            .streaming_output_call(stream_request(&[10, 10, 10, 10], 300_000))
            .await
            .unwrap()
            .into_inner();
        assert!(stream.message().await.unwrap().is_some());
        drop(stream);
        wait_for(|| {
            upstream
                .observed
                .cancelled
                .load(std::sync::atomic::Ordering::Relaxed)
                > before
        })
        .await;
    }
}

#[tokio::test]
async fn client_reset_reaches_the_upstream() {
    // While the request is still open, the request side reads the reset. Once the client
    // has ended its request, only the stream's reset tells the proxy: while it waits for
    // the response headers, and while the response streams.
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let client = raw::connect(proxy.addr).await;
        for (request_ended, behave, answered) in [
            (false, "stall", false),
            (true, "stall", false),
            (true, "data-then-stall", true),
        ] {
            let mut client = client.clone().ready().await.unwrap();
            let before = upstream.resets.lock().unwrap().len();
            let requests_before = upstream.requests.lock().unwrap().len();
            let request = raw::grpc_request("/any.Service/Call", &[("x-behave", behave)]);
            let (response, mut send) = client.send_request(request, false).unwrap();
            send.send_data(raw::frame(b"x"), request_ended).unwrap();
            wait_for(|| upstream.requests.lock().unwrap().len() > requests_before).await;
            if answered {
                let mut body = response.await.unwrap().into_body();
                assert!(body.data().await.is_some(), "{mode:?}: no first message");
            }
            send.send_reset(h2::Reason::CANCEL);
            wait_for(|| upstream.resets.lock().unwrap().len() > before).await;
            assert_eq!(
                upstream.resets.lock().unwrap().last(),
                Some(&h2::Reason::CANCEL),
                "{mode:?} {behave} (request ended: {request_ended})"
            );
        }
    }
}

#[tokio::test]
async fn upstream_reset_reaches_the_client_as_the_right_status() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let channel = sluice_tests::fixture::channel(proxy.addr).await;
        let mut client = test_service_client::TestServiceClient::new(channel);
        // CANCEL (8) → CANCELLED, REFUSED_STREAM (7) → UNAVAILABLE, ENHANCE_YOUR_CALM (11)
        // → RESOURCE_EXHAUSTED, before and after the response headers.
        for (reason, code) in [
            (8, tonic::Code::Cancelled),
            (7, tonic::Code::Unavailable),
            (11, tonic::Code::ResourceExhausted),
        ] {
            for when in ["reset-before-headers", "reset-after-data"] {
                let mut request = tonic::Request::new(stream_request(&[1], 0));
                let script = format!("{when}:{reason}");
                request
                    .metadata_mut()
                    .insert("x-behave", script.parse().unwrap());
                let status = match client.streaming_output_call(request).await {
                    Err(status) => status,
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(_)) => continue,
                                Ok(None) => panic!("{mode:?} {script}: stream ended OK"),
                                Err(status) => break status,
                            }
                        }
                    }
                };
                assert_eq!(status.code(), code, "{mode:?} {script}: {status:?}");
            }
        }
    }
}

#[tokio::test]
async fn gzip_messages_pass_on_both_paths() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream.addr, mode).await;
        let mut client = proxy
            .client()
            .await
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let response = client
            .unary_call(SimpleRequest {
                response_size: 100_000,
                payload: Some(Payload {
                    body: vec![7u8; 100_000],
                }),
                response_status: None,
            })
            .await
            .unwrap();
        let encoding = response
            .metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(response.into_inner().payload.unwrap().body.len(), 100_000);
        match mode {
            // Raw: the upstream's compressed response is passed through untouched.
            BodyMode::Raw => assert_eq!(encoding.as_deref(), Some("gzip")),
            // Message: messages are decompressed and re-framed plain.
            _ => assert_eq!(encoding, None),
        }
    }
}

/// Waits up to 5 s for `condition`.
async fn wait_for(condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "condition not met within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A burst of `messages` messages of `size` bytes from the upstream, one DATA frame each,
/// through a proxy on the raw path: the response, its status OK and its bytes unchanged.
async fn raw_burst(messages: u32, size: usize) -> raw::RawResponse {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut client = raw::connect(proxy.addr).await;
    let behave = format!("burst:{messages}x{size}");
    let response = raw::call(
        &mut client,
        raw::grpc_request("/any.Svc/Burst", &[("x-behave", &behave)]),
        &[raw::frame(b"")],
        true,
    )
    .await;
    assert_eq!(response.grpc_status(), Some(0), "{response:?}");
    let expected: Vec<u8> = (0..messages)
        .flat_map(|i| raw::frame(&raw::burst_message(i, size)).to_vec())
        .collect();
    assert_eq!(response.data, expected, "bytes changed");
    response
}

/// On the raw path, small DATA frames that are already waiting go on to the client as one
/// (fewer, larger frames), bytes and trailers unchanged.
#[tokio::test]
async fn waiting_small_frames_are_coalesced_on_the_raw_path() {
    const MESSAGES: u32 = 500;
    let response = raw_burst(MESSAGES, 4).await;
    assert!(
        response.data_frames.len() < MESSAGES as usize / 2,
        "{} DATA frames for {MESSAGES} one-message frames",
        response.data_frames.len()
    );
}

/// Frames are joined only while they fit in one HTTP/2 frame (16 KiB) together, so a joined
/// frame is not split again on the way to the client: with 6,000-byte messages, one per
/// upstream frame, the client gets frames of at most two messages (the stream's window may
/// cut one short), never a full 16 KiB frame and the rest of a third message after it.
#[tokio::test]
async fn coalesced_frames_fit_in_one_http2_frame() {
    // Two messages fit in 16 KiB, three do not. 600 KB in all stay inside the proxy's 1 MiB
    // stream window towards the upstream, so the upstream never splits a message.
    const SIZE: usize = 6000;
    let response = raw_burst(100, SIZE).await;
    let framed = SIZE + 5;
    assert!(
        response.data_frames.contains(&(2 * framed)),
        "no two messages joined: {:?}",
        response.data_frames
    );
    assert!(
        response.data_frames.iter().all(|&len| len <= 2 * framed),
        "more than two messages joined: {:?}",
        response.data_frames
    );
}
