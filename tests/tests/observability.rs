//! Metrics after known traffic: calls by method and status, durations, bytes, messages,
//! upstream connections, plugin verdicts — scraped from the admin listener and parsed, the
//! counts must match; the access log's plugin verdicts; client connections spread over
//! the worker threads; a perf map of the plugins' functions when asked for; small plugin
//! memories (for valgrind) when asked for.

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
        // Routed calls' request messages (5 + 2); replies only from the 5 OK calls.
        ("sluice_messages_total{direction=\"in\"}", 7.0),
        ("sluice_messages_total{direction=\"out\"}", 5.0),
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

/// Plugin verdicts show in `/metrics` (by plugin, hook and verdict) and in the access log
/// (the verdicts that changed each call), from the real binary with JSON logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_verdicts_reach_metrics_and_the_access_log() {
    use sluice_tests::plugins::PluginDir;
    use sluice_tests::process::{Sluice, free_addr};
    use std::io::Read as _;
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[
        (
            "10-auth",
            "auth_token",
            "token = \"t\"\nmethods = [\"/sluice.testing.TestService/EmptyCall\"]\n",
        ),
        ("20-tag", "chain_tag", "x"),
        ("30-audit", "frame_audit", ""),
    ]);
    let admin = free_addr();
    let mut sluice = Sluice::spawn(|command| {
        command
            .args([
                "--upstream",
                &upstream.addr.to_string(),
                "--log-format",
                "json",
            ])
            .args(["--admin", &admin.to_string(), "--plugins"])
            .arg(dir.path())
            .env("RUST_LOG", "warn,sluice::access=info")
            .stdout(std::process::Stdio::piped());
    });
    let mut client = TestServiceClient::new(sluice.channel().await);
    let denied = client.empty_call(Empty {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(Empty {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer t".parse().unwrap());
    client.empty_call(request).await.unwrap();

    let metrics = scrape(admin).await;
    let calls = |plugin: &str, hook: &str, verdict: &str| {
        metrics
            .get(&format!(
                "sluice_plugin_calls_total{{plugin=\"{plugin}\",hook=\"{hook}\",verdict=\"{verdict}\"}}"
            ))
            .copied()
    };
    assert_eq!(
        calls("10-auth", "request_headers", "reject"),
        Some(1.0),
        "{metrics:#?}"
    );
    // On success auth-token removes the token: a modify.
    assert_eq!(calls("10-auth", "request_headers", "modify"), Some(1.0));
    assert_eq!(calls("10-auth", "request_headers", "forward"), Some(0.0));
    assert!(calls("30-audit", "request_frame", "forward") >= Some(1.0));
    assert_eq!(calls("20-tag", "request_headers", "modify"), Some(1.0));
    assert_eq!(calls("20-tag", "response_headers", "modify"), Some(1.0));
    assert_eq!(
        metrics.get("sluice_plugin_failures_total{plugin=\"20-tag\",kind=\"trap\"}"),
        Some(&0.0)
    );

    sluice.signal("TERM");
    assert!(sluice.exit_within(Duration::from_secs(10)).await.is_some());
    let mut output = String::new();
    sluice
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let access: Vec<serde_json::Value> = output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "sluice::access")
        .collect();
    assert_eq!(access.len(), 2, "{output}");
    let fields = |i: usize| &access[i]["fields"];
    assert_eq!(fields(0)["status"], "16");
    assert_eq!(fields(0)["plugins"], "10-auth:request_headers:reject");
    assert_eq!(fields(0)["method"], "/sluice.testing.TestService/EmptyCall");
    assert_eq!(fields(1)["status"], "0");
    let changed = fields(1)["plugins"].as_str().unwrap();
    for expected in [
        "10-auth:request_headers:modify",
        "20-tag:request_headers:modify",
        "20-tag:response_headers:modify",
        "20-tag:trailers:modify",
    ] {
        assert!(changed.contains(expected), "{changed}");
    }
    assert!(
        !changed.contains("30-audit"),
        "a forward verdict is not a change: {changed}"
    );
}

/// With two worker threads, four client connections are served two on each (by the counts
/// in `/metrics`), not wherever the threads happened to race for them; closed connections
/// leave the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connections_spread_evenly_over_workers() {
    init_logs();
    let upstream = Upstream::start().await;
    let config = Config::load(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        upstream: Some(upstream.addr.to_string()),
        ..Overrides::default()
    })
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let (addr, admin) = (server.local_addr(), server.admin_addr().unwrap());
    tokio::spawn(server.run_workers(2, std::future::pending()));
    let open = |metrics: &HashMap<String, f64>| {
        [0, 1].map(|worker| {
            metrics
                .get(&format!("sluice_client_connections{{worker=\"{worker}\"}}"))
                .copied()
        })
    };
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = TestServiceClient::new(sluice_tests::fixture::channel(addr).await);
        client.empty_call(Empty {}).await.expect("served");
        clients.push(client);
    }
    assert_eq!(open(&scrape(admin).await), [Some(2.0), Some(2.0)]);
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = open(&scrape(admin).await);
        if now == [Some(0.0), Some(0.0)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections still counted: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The binary in front of `upstream` with the plugins of `dir` (no folder watch), `extra`
/// flags, and the environment `variable` set (`(name, true)`) or removed (`(name, false)`).
fn spawn_with_plugins(
    upstream: &Upstream,
    dir: &std::path::Path,
    extra: &[&std::ffi::OsStr],
    (variable, set): (&str, bool),
) -> sluice_tests::process::Sluice {
    sluice_tests::process::Sluice::spawn(|command| {
        command
            .args(["--upstream", &upstream.addr.to_string(), "--no-watch"])
            .arg("--plugins")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "error")
            .env_remove(variable)
            .stdout(std::process::Stdio::null());
        if set {
            command.env(variable, "1");
        }
    })
}

/// With `SLUICE_WASM_PERFMAP` set, `perf` can name the plugins' functions: the proxy
/// writes them to `/tmp/perf-<pid>.map`; without it, no map is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_perf_map_names_plugin_functions_when_asked() {
    use sluice_tests::plugins::PluginDir;
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-tag", "chain_tag", "perf")]);
    for perf_map in [true, false] {
        let variable = (sluice::plugin::runtime::PERF_MAP_VARIABLE, perf_map);
        let sluice = spawn_with_plugins(&upstream, dir.path(), &[], variable);
        // Serving means the plugins are compiled (and their functions registered).
        let mut client = TestServiceClient::new(sluice.channel().await);
        client.empty_call(Empty {}).await.unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", sluice.child.id()));
        let text = std::fs::read_to_string(&map).unwrap_or_default();
        let _ = std::fs::remove_file(&map);
        let names_hook = text.contains("on-request-headers");
        assert_eq!(
            names_hook,
            perf_map,
            "perf map asked for: {perf_map}; {} holds {} bytes",
            map.display(),
            text.len()
        );
    }
}

/// With `SLUICE_WASM_SMALL_MEMORIES` set (so that valgrind can run the proxy with its
/// plugins), the instance pool reserves a small fraction of the address space it reserves
/// otherwise, and the plugins still run inside their limits: a plugin's hook works, a
/// memory bomb still ends only its own call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_memories_shrink_the_reserved_address_space_and_keep_the_limits() {
    use sluice::plugin::runtime::SMALL_MEMORIES_VARIABLE;
    use sluice_tests::plugins::{PluginDir, status_kib};
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[
        ("10-tag", "chain_tag", "small"),
        ("20-hostile", "hostile", "memory-bomb"),
    ]);
    let config = dir.path().with_extension("sluice.toml");
    std::fs::write(
        &config,
        "[limits]\nplugin_instances = 8\n[plugin_defaults]\nmemory_bytes = 16777216\n",
    )
    .unwrap();
    let mut reserved_gib = Vec::new();
    for small in [true, false] {
        let config_flag = [std::ffi::OsStr::new("--config"), config.as_os_str()];
        let variable = (SMALL_MEMORIES_VARIABLE, small);
        let sluice = spawn_with_plugins(&upstream, dir.path(), &config_flag, variable);
        let mut client = TestServiceClient::new(sluice.channel().await);
        let response = client
            .unary_call(SimpleRequest {
                response_size: 10,
                ..SimpleRequest::default()
            })
            .await
            .unwrap_or_else(|s| panic!("small memories {small}: {s}"));
        let tags = response.metadata().get("x-response-chain");
        assert_eq!(tags.map(|t| t.to_str().unwrap()), Some("small"));
        let mut bomb = tonic::Request::new(SimpleRequest::default());
        bomb.metadata_mut()
            .insert("x-hostile", "1".parse().unwrap());
        let status = client.unary_call(bomb).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("growing memory"), "{status:?}");
        client.empty_call(Empty {}).await.unwrap();
        let vm_size_kib = status_kib(&sluice.child.id().to_string(), "VmSize")
            .expect("VmSize in /proc/PID/status");
        reserved_gib.push(vm_size_kib / (1024 * 1024));
    }
    // 8 instances, 16 memories: 16 x 64 MiB small, 16 x (4 GiB + guards) otherwise (the
    // rest, thread stacks and malloc arenas, is the same in both).
    let [small, default] = reserved_gib[..] else {
        unreachable!()
    };
    assert!(
        small < 8 && default >= small + 48,
        "address space with small memories {small} GiB, without {default} GiB"
    );
}
