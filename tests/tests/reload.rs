//! Hot reload: the plugin folder is watched; adding, replacing (bytes or config) and
//! removing a plugin takes effect for new calls, a broken new version is refused while the
//! last good one keeps serving, reloads also come from `POST /reload` and SIGHUP, and a
//! soak under steady unary and bidi traffic sees no failed call, no call that saw two
//! versions, and no lost or duplicated stream message.

use sluice::Overrides;
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::test_service_client::TestServiceClient;
use sluice_tests::pb::testing::*;
use sluice_tests::plugins::PluginDir;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

/// The tags chain-tag versions put on one unary call: (request, response headers, trailers).
async fn tags(
    client: &mut TestServiceClient<Channel>,
) -> (Option<String>, Option<String>, Option<String>) {
    let response = client
        .streaming_output_call(StreamingOutputCallRequest {
            response_parameters: vec![ResponseParameters {
                size: 1,
                interval_us: 0,
            }],
            payload: None,
            response_status: None,
        })
        .await
        .expect("call succeeds");
    let get = |md: &tonic::metadata::MetadataMap, name: &str| {
        md.get(name).map(|v| v.to_str().unwrap().to_owned())
    };
    let request_tag = get(response.metadata(), "x-echo-chain");
    let header_tag = get(response.metadata(), "x-response-chain");
    let mut stream = response.into_inner();
    while stream.message().await.expect("stream ok").is_some() {}
    let trailers = stream
        .trailers()
        .await
        .expect("trailers ok")
        .unwrap_or_default();
    (request_tag, header_tag, get(&trailers, "x-trailer-chain"))
}

/// Polls until a call carries `want` (all three tags), returning how long it took.
async fn wait_for_tag(client: &mut TestServiceClient<Channel>, want: Option<&str>) -> Duration {
    let started = Instant::now();
    loop {
        let (request, response, trailer) = tags(client).await;
        if request.as_deref() == want && response.as_deref() == want && trailer.as_deref() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no call with tag {want:?} within 10 s (last: {request:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_changes_take_effect_and_broken_versions_are_refused() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[]);
    let proxy = Proxy::start(Overrides {
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .await;
    let mut client = proxy.client().await;
    assert_eq!(tags(&mut client).await, (None, None, None));

    // Add: config first, then the component, each written to a temp name and renamed.
    dir.put("10-tag.toml", b"v1");
    dir.put_plugin("10-tag.wasm", "chain_tag");
    let added = wait_for_tag(&mut client, Some("v1")).await;
    // Replace the config: a new version.
    dir.put("10-tag.toml", b"v2");
    let replaced = wait_for_tag(&mut client, Some("v2")).await;
    println!(
        "reload latency (rename -> first call on the new version): add {added:?}, replace {replaced:?}"
    );

    // A broken new version is refused; v2 keeps serving and the state says why.
    dir.put("10-tag.wasm", b"\0asm garbage");
    let started = Instant::now();
    loop {
        let states = proxy.proxy.registry().states();
        if states
            .iter()
            .any(|s| s.name == "10-tag" && s.state == "stale")
        {
            assert!(
                states[0]
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("not a valid component"),
                "{states:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refusal not recorded: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tags(&mut client).await.1.as_deref(), Some("v2"));
    assert!(
        proxy
            .proxy
            .registry()
            .counters()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // Remove: calls go through untouched again.
    dir.remove("10-tag.wasm");
    wait_for_tag(&mut client, None).await;
    // Temp and hidden files are never loaded.
    let bytes = std::fs::read(sluice_tests::plugins::wasm("chain_tag")).unwrap();
    std::fs::write(dir.path().join("20-tmp.wasm.tmp"), &bytes).unwrap();
    std::fs::write(dir.path().join(".20-hidden.wasm"), &bytes).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(proxy.proxy.registry().snapshot().is_empty());
    // A reload reads the folder; its own reads must not trigger more reloads.
    let reloads = || {
        proxy
            .proxy
            .registry()
            .counters()
            .reloads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let settled = reloads();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(reloads(), settled, "the folder reloads by itself");
}

async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_and_plugin_list_without_the_watcher() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[]);
    let config = sluice::Config::load(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        no_watch: true,
        ..Overrides::default()
    })
    .unwrap();
    let server = sluice::Server::bind(&config).await.unwrap();
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let mut client = TestServiceClient::new(sluice_tests::fixture::channel(addr).await);

    dir.put("10-tag.toml", b"a");
    dir.put_plugin("10-tag.wasm", "chain_tag");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        tags(&mut client).await.1,
        None,
        "no watcher: nothing reloads by itself"
    );

    let response = http(
        admin,
        "POST /reload HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"10-tag\""), "{response}");
    assert_eq!(tags(&mut client).await.1.as_deref(), Some("a"));

    let list = http(
        admin,
        "GET /plugins HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    let body = &list[list.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let plugin = &json[0];
    assert_eq!(plugin["name"], "10-tag");
    assert_eq!(plugin["state"], "loaded");
    assert_eq!(plugin["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        plugin["hooks"],
        serde_json::json!(["request-headers", "response-headers", "trailers"])
    );
    let health = http(
        admin,
        "GET /healthz HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A broken new version: refused, visible in the list and in the metrics; the last
    // good version keeps serving.
    dir.put("10-tag.wasm", b"not wasm");
    let response = http(
        admin,
        "POST /reload HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(response.contains("not a valid component"), "{response}");
    assert_eq!(tags(&mut client).await.1.as_deref(), Some("a"));
    let list = http(
        admin,
        "GET /plugins HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(list.contains("\"stale\""), "{list}");
    let metrics = http(
        admin,
        "GET /metrics HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    for line in [
        "sluice_plugin_loads_total{result=\"loaded\"} 1",
        "sluice_plugin_loads_total{result=\"refused\"} 1",
        "sluice_plugin_state{plugin=\"10-tag\",state=\"stale\"} 1",
        "sluice_plugin_reloads_total 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
}

/// Steady unary and bidi traffic while the plugin is replaced 50 times with alternating
/// versions: no call fails, each call sees one version from start to end, and every
/// stream gets exactly the replies it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_soak_loses_nothing() {
    init_logs();
    const SWAPS: usize = 50;
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-tag", "chain_tag", "v0")]);
    let proxy = Proxy::start(Overrides {
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .await;
    let client = proxy.client().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let unary = {
        let (mut client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut calls, mut versions) = (0usize, std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (request, response, trailer) = tags(&mut client).await;
                assert!(
                    request.is_some() && request == response && response == trailer,
                    "mixed versions: {request:?} {response:?} {trailer:?}"
                );
                versions.insert(request.unwrap());
                calls += 1;
            }
            (calls, versions.len())
        })
    };
    let bidi = {
        let (mut client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut streams = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pings: Vec<StreamingOutputCallRequest> = (1..=5)
                    .map(|i| StreamingOutputCallRequest {
                        response_parameters: vec![ResponseParameters {
                            size: i,
                            interval_us: 2_000,
                        }],
                        payload: None,
                        response_status: None,
                    })
                    .collect();
                let response = client
                    .full_duplex_call(tokio_stream::iter(pings))
                    .await
                    .expect("bidi call");
                let version = response
                    .metadata()
                    .get("x-response-chain")
                    .map(|v| v.to_str().unwrap().to_owned());
                let mut stream = response.into_inner();
                let mut sizes = Vec::new();
                while let Some(reply) = stream.message().await.expect("bidi stream") {
                    sizes.push(reply.payload.map_or(0, |p| p.body.len()));
                }
                assert_eq!(sizes, [1, 2, 3, 4, 5], "lost or duplicated messages");
                let trailers = stream
                    .trailers()
                    .await
                    .expect("trailers")
                    .unwrap_or_default();
                let trailer_version = trailers
                    .get("x-trailer-chain")
                    .map(|v| v.to_str().unwrap().to_owned());
                assert!(
                    version.is_some() && version == trailer_version,
                    "mixed versions on a stream: {version:?} {trailer_version:?}"
                );
                streams += 1;
            }
            streams
        })
    };
    let started = Instant::now();
    for swap in 1..=SWAPS {
        let tag = if swap % 2 == 1 { "v1" } else { "v2" };
        dir.put("10-tag.toml", tag.as_bytes());
        if swap % 10 == 0 {
            // Now and then replace the component bytes too (same code, new file).
            dir.put_plugin("10-tag.wasm", "chain_tag");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (calls, versions_seen) = unary.await.expect("unary task");
    let streams = bidi.await.expect("bidi task");
    let reloads = proxy
        .proxy
        .registry()
        .counters()
        .reloads
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "soak: {SWAPS} swaps in {:?}: {calls} unary calls ({versions_seen} versions seen), {streams} bidi streams x5, {reloads} reloads, 0 failed",
        started.elapsed()
    );
    assert!(
        calls > 100 && streams > 20,
        "too little traffic: {calls} calls, {streams} streams"
    );
    assert!(
        versions_seen >= 3,
        "swaps were not observed: {versions_seen} versions"
    );
}
