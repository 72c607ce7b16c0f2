//! A sandbox that survives hostile plugins: an endless loop, a panic, a memory bomb and a
//! giant `modify` each end only the call that triggered them (fail-closed: UNAVAILABLE
//! naming the plugin; fail-open: the plugin is skipped), while other calls on the same
//! proxy keep succeeding; plugins that cannot load (configure error, bytes that are not
//! wasm, a core module, a component of the wrong world) are refused with the reason.

use sluice::Overrides;
use sluice::plugin::stats::{FailureKind, Hook, Outcome};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::*;
use sluice_tests::plugins::{PluginDir, rss_kib};
use std::time::{Duration, Instant};

async fn proxy_with(upstream: &Upstream, dir: &PluginDir, extra_config: &str) -> Proxy {
    let config = dir.path().with_extension("sluice.toml");
    std::fs::write(&config, extra_config).unwrap();
    Proxy::start(Overrides {
        config: Some(config),
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .await
}

fn hostile_request() -> tonic::Request<SimpleRequest> {
    let mut request = tonic::Request::new(SimpleRequest {
        response_size: 10,
        payload: Some(Payload { body: vec![1; 10] }),
        response_status: None,
    });
    request
        .metadata_mut()
        .insert("x-hostile", "1".parse().unwrap());
    request
}

fn normal_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 10,
        payload: None,
        response_status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_end_only_their_call_when_fail_closed() {
    init_logs();
    let upstream = Upstream::start().await;
    for (mode, expect, limits, kind) in [
        (
            "loop",
            "CPU deadline",
            "hook_deadline_ms = 50",
            FailureKind::Deadline,
        ),
        ("panic", "unreachable", "", FailureKind::Trap),
        // The same on an instance lent for one hook (a stateless plugin).
        ("panic stateless", "unreachable", "", FailureKind::Trap),
        (
            "memory-bomb",
            "growing memory",
            "memory_bytes = 16777216",
            FailureKind::Trap,
        ),
        (
            "giant-modify",
            "exceeds the cap",
            "max_output_bytes = 1048576\nhook_deadline_ms = 5000",
            FailureKind::Limit,
        ),
        (
            "giant-state",
            "over its max_call_state_bytes of 1024",
            "max_call_state_bytes = 1024",
            FailureKind::Limit,
        ),
    ] {
        let dir = PluginDir::new(&[("10-hostile", "hostile", mode)]);
        let proxy = proxy_with(&upstream, &dir, &format!("[plugin_defaults]\n{limits}\n")).await;
        let mut client = proxy.client().await;
        client
            .unary_call(normal_request())
            .await
            .unwrap_or_else(|s| panic!("{mode}: {s}"));
        let started = Instant::now();
        let status = client.unary_call(hostile_request()).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unavailable,
            "{mode}: {status:?}"
        );
        assert!(
            status.message().contains("10-hostile"),
            "{mode}: {status:?}"
        );
        assert!(status.message().contains(expect), "{mode}: {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode}: took {:?}",
            started.elapsed()
        );
        // The next calls get a fresh instance and work.
        for _ in 0..3 {
            client
                .unary_call(normal_request())
                .await
                .unwrap_or_else(|s| panic!("{mode} after: {s}"));
        }
        let plugin = proxy.proxy.registry().snapshot().plugins()[0].clone();
        let failures: Vec<u64> = FailureKind::ALL
            .iter()
            .map(|k| plugin.stats().failures(*k))
            .collect();
        assert_eq!(plugin.stats().failures(kind), 1, "{mode}: {failures:?}");
        assert_eq!(failures.iter().sum::<u64>(), 1, "{mode}: {failures:?}");
        let failed_hooks: u64 = Hook::ALL
            .iter()
            .map(|h| plugin.stats().outcomes(*h, Outcome::Failed))
            .sum();
        assert_eq!(failed_hooks, 1, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_skips_the_broken_plugin() {
    init_logs();
    let upstream = Upstream::start().await;
    for mode in ["panic", "panic stateless"] {
        let dir = PluginDir::new(&[("10-hostile", "hostile", mode)]);
        let proxy = proxy_with(
            &upstream,
            &dir,
            "[plugin.10-hostile]\non_error = \"fail-open\"\n",
        )
        .await;
        let mut client = proxy.client().await;
        let response = client.unary_call(hostile_request()).await.unwrap();
        assert_eq!(response.into_inner().payload.unwrap().body.len(), 10);
        let plugin = proxy.proxy.registry().snapshot().plugins()[0].clone();
        assert_eq!(plugin.stats().skipped(), 1, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_that_cannot_load_are_refused_with_the_reason() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[
        ("10-configure-error", "hostile", "configure-error"),
        ("50-good", "dedupe", ""),
    ]);
    dir.put("20-not-wasm.wasm", b"this is not wasm at all");
    dir.put(
        "30-core-module.wasm",
        &wat::parse_str("(module (func (export \"f\")))").unwrap(),
    );
    dir.put(
        "40-wrong-world.wasm",
        &wat::parse_str("(component (core module $m) (core instance (instantiate $m)))").unwrap(),
    );
    // Built against an older version of the interface: refused, saying so.
    dir.put(
        "45-old-interface.wasm",
        &wat::parse_str(
            r#"(component
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (instance $filter (export "configure" (func $f)))
                (export "sluice:filter/filter@0.2.0" (instance $filter)))"#,
        )
        .unwrap(),
    );
    let proxy = proxy_with(&upstream, &dir, "").await;
    let states = proxy.proxy.registry().states();
    let state = |name: &str| {
        states
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no state for {name}: {states:?}"))
    };
    for (name, reason) in [
        ("10-configure-error", "refusing to configure"),
        ("20-not-wasm", "not a valid component"),
        ("30-core-module", "not a valid component"),
        ("40-wrong-world", "sluice:filter"),
        (
            "45-old-interface",
            "built against sluice:filter@0.2.0, but this proxy speaks sluice:filter@0.4.0",
        ),
    ] {
        let state = state(name);
        assert_eq!(state.state, "refused", "{name}: {state:?}");
        let error = state.last_error.clone().unwrap_or_default();
        assert!(error.contains(reason), "{name}: {error}");
    }
    assert_eq!(state("50-good").state, "loaded");
    assert_eq!(proxy.plugin_names(), ["50-good"]);
    proxy.client().await.empty_call(Empty {}).await.unwrap();
}

/// 1,000 trapped calls: the proxy's memory does not grow without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapped_calls_do_not_leak_memory() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-hostile", "hostile", "panic")]);
    let proxy = proxy_with(&upstream, &dir, "").await;
    let mut client = proxy.client().await;
    let trap = |mut client: test_service_client::TestServiceClient<_>| async move {
        let status = client.unary_call(hostile_request()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
    };
    for _ in 0..100 {
        trap(client.clone()).await;
    }
    let before = rss_kib();
    for _ in 0..1_000 {
        trap(client.clone()).await;
    }
    let after = rss_kib();
    println!("RSS before 1,000 trapped calls: {before} KiB, after: {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    client.unary_call(normal_request()).await.unwrap();
}
