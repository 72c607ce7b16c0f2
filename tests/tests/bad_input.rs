//! Bad input gets a clear error and harms no one else: HTTP/1.1, non-gRPC requests,
//! malformed or truncated length prefixes, oversized messages, unknown encodings and
//! malformed deadlines each get their status, and the same client connection keeps working.

use bytes::Bytes;
use sluice::{BodyMode, Overrides};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::raw::{self, RawClient, RawResponse, ScriptedUpstream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EMPTY_CALL: &str = "/sluice.testing.TestService/EmptyCall";

async fn send(client: &mut RawClient, extra: &[(&str, &str)], chunks: &[Bytes]) -> RawResponse {
    raw::call(client, raw::grpc_request(EMPTY_CALL, extra), chunks, true).await
}

/// A good call on the same connection still works.
async fn assert_connection_still_serves(client: &mut RawClient) {
    let ok = send(client, &[], &[raw::frame(b"")]).await;
    assert_eq!(ok.grpc_status(), Some(0), "{ok:?}");
}

#[tokio::test]
async fn http1_request_gets_a_clear_http_error() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"POST /sluice.testing.TestService/EmptyCall HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    // The proxy answers, then closes the connection: nothing more is served on it.
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .expect("the connection was not closed after the refusal")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 505"), "{text}");
    assert!(text.contains("HTTP/2"), "{text}");
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn non_grpc_requests_get_http_errors() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut client = raw::connect(proxy.addr).await;
    let mut request = raw::grpc_request(EMPTY_CALL, &[]);
    request
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    let response = raw::call(&mut client, request, &[Bytes::from_static(b"{}")], true).await;
    assert_eq!(response.status, 415);
    let mut request = raw::grpc_request(EMPTY_CALL, &[]);
    *request.method_mut() = http::Method::GET;
    let response = raw::call(&mut client, request, &[], true).await;
    assert_eq!(response.status, 405);
    assert_connection_still_serves(&mut client).await;
}

#[tokio::test]
async fn malformed_and_truncated_prefixes_are_internal_on_the_message_path() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Message).await;
    let mut client = raw::connect(proxy.addr).await;
    // The last three: a good message first, in the same DATA frame as the bad bytes and
    // the end of the stream, so the good one goes upstream and the error must still come.
    let cases: [(&str, &[u8]); 6] = [
        ("bad flag", &[7, 0, 0, 0, 1, 0]),
        ("truncated payload", &[0, 0, 0, 0, 10, 1, 2, 3]),
        ("truncated prefix", &[0, 0, 0]),
        ("message, then bad flag", &[0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0]),
        (
            "message, then truncated payload",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1],
        ),
        ("message, then truncated prefix", &[0, 0, 0, 0, 0, 0, 0]),
    ];
    for (name, body) in cases {
        let response = send(&mut client, &[], &[Bytes::copy_from_slice(body)]).await;
        assert_eq!(response.grpc_status(), Some(13), "{name}: {response:?}");
        assert!(!response.grpc_message().is_empty(), "{name}: no message");
        assert_connection_still_serves(&mut client).await;
    }
}

#[tokio::test]
async fn oversized_message_is_resource_exhausted() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Message).await;
    let mut client = raw::connect(proxy.addr).await;
    // Default maximum is 16 MiB: announce one byte more (no need to send it).
    let prefix = Bytes::from_static(&[0, 0x01, 0x00, 0x00, 0x01]);
    let response = raw::call(
        &mut client,
        raw::grpc_request(EMPTY_CALL, &[]),
        &[prefix],
        false,
    )
    .await;
    assert_eq!(response.grpc_status(), Some(8), "{response:?}");
    assert!(
        response.grpc_message().contains("16777217"),
        "{}",
        response.grpc_message()
    );
    assert_connection_still_serves(&mut client).await;
}

#[tokio::test]
async fn configured_message_limit_applies_after_decompression() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("sluice-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        "body_mode = \"message\"\n[limits]\nmax_message_bytes = 1024\n",
    )
    .unwrap();
    let proxy = Proxy::start(Overrides {
        config: Some(path),
        upstream: Some(upstream.addr.to_string()),
        ..Overrides::default()
    })
    .await;
    let mut client = proxy
        .client()
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    // 4 KiB of zeros compresses far below 1 KiB but inflates past it.
    let status = client
        .unary_call(sluice_tests::pb::testing::SimpleRequest {
            response_size: 0,
            payload: Some(sluice_tests::pb::testing::Payload {
                body: vec![0; 4096],
            }),
            response_status: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let mut client = raw::connect(proxy.addr).await;
    assert_connection_still_serves(&mut client).await;
}

#[tokio::test]
async fn unknown_encoding_is_unimplemented_on_the_message_path_and_passes_raw() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Message).await;
    let mut client = raw::connect(proxy.addr).await;
    let response = send(
        &mut client,
        &[("grpc-encoding", "snappy")],
        &[raw::frame(b"")],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(12), "{response:?}");
    assert_eq!(response.headers["grpc-accept-encoding"], "identity,gzip");
    assert_connection_still_serves(&mut client).await;

    // Raw: untouched, so the upstream itself judges it (tonic: UNIMPLEMENTED too, but
    // from the upstream, which proves it was forwarded).
    let raw_proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut client = raw::connect(raw_proxy.addr).await;
    let response = send(
        &mut client,
        &[("grpc-encoding", "snappy")],
        &[raw::frame(b"")],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(12), "{response:?}");
    assert!(
        !response.grpc_message().contains("sluice"),
        "{}",
        response.grpc_message()
    );
}

#[tokio::test]
async fn malformed_grpc_timeout_is_refused() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Raw).await;
    let mut client = raw::connect(proxy.addr).await;
    let response = send(&mut client, &[("grpc-timeout", "soon")], &[raw::frame(b"")]).await;
    assert_eq!(response.grpc_status(), Some(13), "{response:?}");
    assert!(response.grpc_message().contains("grpc-timeout"));
    assert_connection_still_serves(&mut client).await;
}

#[tokio::test]
async fn malformed_response_from_upstream_is_internal_on_the_message_path() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    let proxy = Proxy::to(upstream.addr, BodyMode::Message).await;
    let mut client = raw::connect(proxy.addr).await;
    let response = send(
        &mut client,
        &[("x-behave", "bad-response-frame")],
        &[raw::frame(b"")],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(13), "{response:?}");
    assert!(
        response.grpc_message().contains("compressed flag"),
        "{}",
        response.grpc_message()
    );
}
