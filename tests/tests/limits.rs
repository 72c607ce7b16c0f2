//! Limits and timeouts: a default deadline for calls without one, the request header list
//! size, and HTTP/2 keepalive pings that close a connection whose peer stopped answering.

use sluice::{BodyMode, Overrides};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::raw::{self, ScriptedUpstream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy_with_limits(upstream: std::net::SocketAddr, limits: &str) -> Proxy {
    // A file of its own per proxy: tests run at once, and two with the same limits must
    // not write one file while the other's proxy reads it.
    static PROXIES: AtomicUsize = AtomicUsize::new(0);
    let file = std::env::temp_dir().join(format!(
        "sluice-limits-{}-{}.toml",
        std::process::id(),
        PROXIES.fetch_add(1, Ordering::Relaxed)
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

/// An upstream that completes the HTTP/2 handshake and then never reads or writes again
/// (a frozen process, a half-dead middle box): pings sent to it go unanswered.
async fn frozen_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(connection) = h2::server::handshake(tcp).await {
                held.push(connection);
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn keepalive_pings_give_up_an_upstream_that_went_silent() {
    init_logs();
    let (frozen, task) = frozen_upstream().await;
    let with = proxy_with_limits(
        frozen,
        "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 200",
    )
    .await;
    let without = proxy_with_limits(frozen, "keepalive_interval_ms = 0").await;
    let call = |addr| async move {
        let client = raw::connect(addr).await;
        raw::try_call(&client, raw::grpc_request(EMPTY_CALL, &[]), b"").await
    };
    let ended = tokio::time::timeout(Duration::from_secs(5), call(with.addr))
        .await
        .expect("a call to a silent upstream still hangs with keepalive pings")
        .unwrap();
    assert_eq!(ended.grpc_status(), Some(14), "{ended:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), call(without.addr))
            .await
            .is_err(),
        "ended without keepalive: something else gave the connection up"
    );
    task.abort();
}

/// A raw HTTP/2 connection whose driver task ends when the server closes the connection.
async fn connect_watched(
    addr: std::net::SocketAddr,
) -> (raw::RawClient, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

const EMPTY_CALL: &str = "/sluice.testing.TestService/EmptyCall";
const FULL_DUPLEX: &str = "/sluice.testing.TestService/FullDuplexCall";

#[tokio::test]
async fn idle_client_connections_are_closed_but_busy_ones_are_not() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = proxy_with_limits(upstream.addr, "idle_timeout_ms = 300").await;

    // Idle after one call: closed about a timeout later.
    let (client, driver) = connect_watched(proxy.addr).await;
    let ok = raw::try_call(&client, raw::grpc_request(EMPTY_CALL, &[]), b"")
        .await
        .unwrap();
    assert_eq!(ok.grpc_status(), Some(0));
    closed_after_the_idle_timeout(driver, "an idle connection")
        .await
        .unwrap();

    // A quiet open stream keeps the connection busy for three timeouts.
    let (client, driver) = connect_watched(proxy.addr).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut stream) = ready
        .send_request(raw::grpc_request(FULL_DUPLEX, &[]), false)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        !driver.is_finished(),
        "a connection with an open stream was closed"
    );
    let second = raw::try_call(&client, raw::grpc_request(EMPTY_CALL, &[]), b"")
        .await
        .expect("a new call on the busy connection");
    assert_eq!(second.grpc_status(), Some(0));
    stream.send_data(bytes::Bytes::new(), true).unwrap();
    let ended = raw::read_response(response).await;
    assert_eq!(ended.grpc_status(), Some(0), "{ended:?}");
    // Now idle: closed.
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the connection was not closed once idle")
        .unwrap();
}

#[tokio::test]
async fn a_client_connection_that_never_speaks_is_closed_after_the_idle_timeout() {
    init_logs();
    let upstream = Upstream::start().await;
    let proxy = proxy_with_limits(upstream.addr, "idle_timeout_ms = 300").await;
    // Connected, and not even the HTTP/2 preface sent.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut rest = Vec::new();
    closed_after_the_idle_timeout(tcp.read_to_end(&mut rest), "a silent connection")
        .await
        .unwrap();
}

/// Waits for `closed` (a connection's end), which must come within 5 s but not before
/// about one idle timeout of 300 ms has passed.
async fn closed_after_the_idle_timeout<T>(closed: impl Future<Output = T>, what: &str) -> T {
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .unwrap_or_else(|_| panic!("{what} was not closed"));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early: {:?}",
        started.elapsed()
    );
    ended
}

/// A bidi call through two middle boxes that cut connections idle for 400 ms (one between
/// client and proxy, one between proxy and upstream), quiet for 1.2 s mid-stream.
async fn quiet_stream_through_middleboxes(keepalive: &str) -> (Result<(), String>, usize) {
    use sluice_tests::middlebox::Middlebox;
    use sluice_tests::pb::testing::*;
    let upstream = Upstream::start().await;
    let cutoff = Duration::from_millis(400);
    let upstream_side = Middlebox::start(upstream.addr, cutoff).await;
    let proxy = proxy_with_limits(upstream_side.addr, keepalive).await;
    let client_side = Middlebox::start(proxy.addr, cutoff).await;
    let mut client = sluice_tests::pb::testing::test_service_client::TestServiceClient::new(
        sluice_tests::fixture::channel(client_side.addr).await,
    );
    let ping = || StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: 8,
            interval_us: 0,
        }],
        payload: None,
        response_status: None,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let result = async {
        let mut replies = client
            .full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| s.to_string())?
            .into_inner();
        for round in 0..2 {
            if round == 1 {
                tokio::time::sleep(Duration::from_millis(1200)).await;
            }
            tx.send(ping()).await.map_err(|e| e.to_string())?;
            let reply = tokio::time::timeout(Duration::from_secs(3), replies.message())
                .await
                .map_err(|_| format!("round {round}: no reply"))?
                .map_err(|s| format!("round {round}: {s}"))?;
            if reply.is_none() {
                return Err(format!("round {round}: stream ended"));
            }
        }
        Ok(())
    }
    .await;
    let cut = client_side.cut.load(std::sync::atomic::Ordering::Relaxed)
        + upstream_side.cut.load(std::sync::atomic::Ordering::Relaxed);
    (result, cut)
}

#[tokio::test]
async fn keepalive_pings_keep_a_quiet_stream_alive_through_idle_cutting_middleboxes() {
    init_logs();
    let (with, cut) = quiet_stream_through_middleboxes(
        "keepalive_interval_ms = 100\nkeepalive_timeout_ms = 1000",
    )
    .await;
    assert_eq!((with, cut), (Ok(()), 0), "with keepalive pings");
    let (without, cut) = quiet_stream_through_middleboxes("keepalive_interval_ms = 0").await;
    assert!(
        without.is_err() && cut > 0,
        "without pings the middle boxes should cut the stream: {without:?}, {cut} cut"
    );
}

#[tokio::test]
async fn max_concurrent_streams_per_client_connection_is_enforced() {
    init_logs();
    let upstream = ScriptedUpstream::start().await;
    let proxy = proxy_with_limits(upstream.addr, "max_concurrent_streams = 2").await;
    let client = raw::connect(proxy.addr).await;
    let forwarded = || upstream.requests.lock().unwrap().len();
    // Three calls the upstream never answers; the proxy's SETTINGS allow two streams, so
    // the third waits in the client.
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut ready = client.clone().ready().await.unwrap();
        open.push(
            ready
                .send_request(raw::grpc_request("/any.Svc/Stall", &[]), false)
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        forwarded(),
        2,
        "more streams than allowed reached the upstream"
    );
    // What the proxy told the client in its SETTINGS.
    assert_eq!(client.current_max_send_streams(), 2);
    drop(open);
}
