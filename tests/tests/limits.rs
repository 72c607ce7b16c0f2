//! Limits and timeouts: a default deadline for calls without one, the request header list
//! size, and HTTP/2 keepalive pings that close a connection whose peer stopped answering.

use sluice::{BodyMode, Overrides};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::raw::{self, ScriptedUpstream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy_with_limits(upstream: std::net::SocketAddr, limits: &str) -> Proxy {
    let file = std::env::temp_dir().join(format!(
        "sluice-limits-{}-{:x}.toml",
        std::process::id(),
        limits.len() * 7919 + limits.bytes().map(usize::from).sum::<usize>()
    ));
    std::fs::write(&file, format!("[limits]\n{limits}\n")).unwrap();
    Proxy::start(Overrides {
        config: Some(file),
        upstream: Some(upstream.to_string()),
        body_mode: Some(BodyMode::Raw),
        ..Overrides::default()
    })
    .await
}

#[tokio::test]
async fn calls_without_a_deadline_get_the_default_one() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    let proxy = proxy_with_limits(upstream.addr, "default_deadline_ms = 200").await;
    let mut client = raw::connect(proxy.addr).await;
    let started = Instant::now();
    let response = raw::call(
        &mut client,
        raw::grpc_request("/any.Svc/Stall", &[]),
        &[raw::frame(b"")],
        true,
    )
    .await;
    assert_eq!(response.grpc_status(), Some(4), "{response:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let headers = upstream.requests.lock().unwrap().last().cloned().unwrap();
    let forwarded = sluice::grpc::timeout::parse(headers["grpc-timeout"].as_bytes()).unwrap();
    assert!(forwarded <= Duration::from_millis(200), "{forwarded:?}");
}

#[tokio::test]
async fn oversized_header_lists_are_refused_and_the_connection_goes_on() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = proxy_with_limits(upstream.addr, "max_header_list_bytes = 4096").await;
    let mut client = raw::connect(proxy.addr).await;
    let big = "x".repeat(8192);
    let response = raw::call(
        &mut client,
        raw::grpc_request("/sluice.testing.TestService/EmptyCall", &[("x-big", &big)]),
        &[raw::frame(b"")],
        true,
    )
    .await;
    assert!(
        response.status == 431 || response.reset.is_some(),
        "{response:?}"
    );
    let ok = raw::call(
        &mut client,
        raw::grpc_request("/sluice.testing.TestService/EmptyCall", &[]),
        &[raw::frame(b"")],
        true,
    )
    .await;
    assert_eq!(ok.grpc_status(), Some(0), "{ok:?}");
}

/// Opens an HTTP/2 connection that never answers anything; returns when the server closes
/// it, or after `wait`.
async fn silent_peer_lifetime(addr: std::net::SocketAddr, wait: Duration) -> Option<Duration> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            wait.saturating_sub(started.elapsed()),
            tcp.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn keepalive_pings_close_connections_whose_peer_went_silent() {
    init_logs();
    let upstream = Upstream::start().await;
    let with = proxy_with_limits(
        upstream.addr,
        "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 200",
    )
    .await;
    let without = proxy_with_limits(upstream.addr, "keepalive_interval_ms = 0").await;
    let closed = silent_peer_lifetime(with.addr, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a silent peer was not detected by keepalive"
    );
    assert!(
        silent_peer_lifetime(without.addr, Duration::from_millis(1500))
            .await
            .is_none(),
        "closed without keepalive: something else closed it"
    );
}
