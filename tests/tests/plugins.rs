//! End-to-end tests of the wasm filters: real components built from `plugins/`, loaded by a
//! running proxy, driving real calls for every verdict (forward, drop, modify, reject) on
//! unary and streaming calls, and the order of a 3-plugin chain.

use sluice::{BodyMode, Overrides};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::helloworld::HelloRequest;
use sluice_tests::pb::helloworld::greeter_client::GreeterClient;
use sluice_tests::pb::testing::*;
use sluice_tests::plugins::PluginDir;
use std::sync::Arc;
use std::time::Duration;

/// A proxy (auto body mode) whose only plugin is `crate_name` with `config`, as file
/// `file`; the folder (kept while the proxy runs) and the loaded plugin with it.
async fn one_plugin_proxy(
    upstream: &Upstream,
    file: &str,
    crate_name: &str,
    config: &str,
) -> (PluginDir, Proxy, Arc<sluice::plugin::LoadedPlugin>) {
    let dir = PluginDir::new(&[(file, crate_name, config)]);
    let proxy = proxy_with(upstream, &dir, BodyMode::Auto).await;
    let plugin = proxy.proxy.registry().snapshot().plugins()[0].clone();
    (dir, proxy, plugin)
}

async fn proxy_with(upstream: &Upstream, dir: &PluginDir, mode: BodyMode) -> Proxy {
    Proxy::start(Overrides {
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        body_mode: Some(mode),
        ..Overrides::default()
    })
    .await
}

fn payload(len: usize) -> Option<Payload> {
    Some(Payload {
        body: vec![3u8; len],
    })
}

#[tokio::test]
async fn auth_token_rejects_without_token_and_strips_it_on_success() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-auth", "auth_token", "token = \"s3cret\"")]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;

    let status = client.empty_call(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let mut wrong = tonic::Request::new(Empty {});
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer guess".parse().unwrap());
    assert_eq!(
        client.empty_call(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        upstream.calls(),
        0,
        "rejected calls must not reach the upstream"
    );

    // Streaming call with the token: passes, and the upstream never sees the token.
    let mut request = tonic::Request::new(tokio_stream::iter(vec![StreamingInputCallRequest {
        payload: payload(5),
    }]));
    request
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-keep", "yes".parse().unwrap());
    let response = client.streaming_input_call(request).await.unwrap();
    assert_eq!(response.into_inner().aggregated_payload_size, 5);
    let seen = upstream
        .observed
        .metadata
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert!(
        seen.get("authorization").is_none(),
        "token leaked upstream: {seen:?}"
    );
    assert_eq!(seen.get("x-keep").unwrap(), "yes");
}

#[tokio::test]
async fn method_acl_denies_before_the_upstream() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[(
        "10-acl",
        "method_acl",
        "deny = [\"/sluice.testing.TestService/Unary*\"]",
    )]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    let status = client
        .unary_call(SimpleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("UnaryCall"));
    assert_eq!(upstream.calls(), 0);
    client.empty_call(Empty {}).await.unwrap();
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn size_limit_rejects_large_messages_in_both_directions() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[(
        "10-size",
        "size_limit",
        "max_request_bytes = 1000\nmax_response_bytes = 2000",
    )]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    // Unary, request too large: rejected before the upstream.
    let status = client
        .unary_call(SimpleRequest {
            response_size: 1,
            payload: payload(5000),
            response_status: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // Unary within limits: fine.
    client
        .unary_call(SimpleRequest {
            response_size: 100,
            payload: payload(100),
            response_status: None,
        })
        .await
        .unwrap();
    // Server streaming: the third response is too large; the first two arrive.
    let mut stream = client
        .streaming_output_call(StreamingOutputCallRequest {
            response_parameters: [10, 20, 5000, 30]
                .iter()
                .map(|&size| ResponseParameters {
                    size,
                    interval_us: 0,
                })
                .collect(),
            payload: None,
            response_status: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_some());
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn redact_fields_modifies_requests_and_responses() {
    init_logs();
    let upstream = Upstream::start().await;
    // StreamingInputCallRequest.payload and SimpleResponse.payload are field 1.
    let dir = PluginDir::new(&[(
        "10-redact",
        "redact_fields",
        "request_fields = [1]\nresponse_fields = [1]\nmethods = [\"/sluice.testing.TestService/StreamingInputCall\", \"/sluice.testing.TestService/UnaryCall\"]",
    )]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    let requests = (0..3).map(|_| StreamingInputCallRequest {
        payload: payload(100),
    });
    let response = client
        .streaming_input_call(tokio_stream::iter(requests))
        .await
        .unwrap();
    assert_eq!(
        response.into_inner().aggregated_payload_size,
        0,
        "payloads were not removed"
    );
    let response = client
        .unary_call(SimpleRequest {
            response_size: 64,
            payload: None,
            response_status: None,
        })
        .await
        .unwrap();
    assert_eq!(
        response.into_inner().payload,
        None,
        "response payload was not removed"
    );
}

#[tokio::test]
async fn dedupe_drops_repeated_request_messages() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-dedupe", "dedupe", "")]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    let sizes = [10, 10, 20, 20, 20, 10];
    let requests = sizes.map(|n| StreamingInputCallRequest {
        payload: payload(n),
    });
    let response = client
        .streaming_input_call(tokio_stream::iter(requests))
        .await
        .unwrap();
    assert_eq!(response.into_inner().aggregated_payload_size, 40);
}

/// Calls one after another reuse the one pooled instance of a plugin that keeps call
/// state in it; each starts with fresh state (a hook with a new call number drops the
/// previous call's): `every-other` drops the second of three messages in every call, not
/// the first and third of the second call.
#[tokio::test]
async fn a_reused_instance_starts_each_call_afresh() {
    init_logs();
    let upstream = Upstream::start().await;
    let (_dir, proxy, plugin) =
        one_plugin_proxy(&upstream, "10-every-other", "every_other", "held").await;
    let mut client = proxy.client().await;
    for call in 0..3 {
        let requests = [10, 20, 30].map(|n| StreamingInputCallRequest {
            payload: payload(n),
        });
        let response = client
            .streaming_input_call(tokio_stream::iter(requests))
            .await
            .unwrap();
        assert_eq!(
            response.into_inner().aggregated_payload_size,
            40,
            "call {call}"
        );
        // The call is over once its response is in; its instance is back in the pool.
        until_idle(&plugin, 1, &format!("after call {call}")).await;
    }
}

/// A stateless plugin keeps what it needs with the proxy, per call (`set-call-state`):
/// two bidi streams, their messages interleaved, each get their own count and their own
/// previous message although one instance serves both; a plugin keeping the count in
/// its instance holds one per stream instead.
#[tokio::test]
async fn call_state_is_kept_per_call_apart_from_the_instances() {
    init_logs();
    let upstream = Upstream::start().await;
    for (crate_name, config, instances) in [
        ("every_other", "kept", 1),
        ("every_other", "held", 2),
        ("dedupe", "", 1),
    ] {
        let what = format!("{crate_name} {config}");
        let (_dir, proxy, plugin) = one_plugin_proxy(&upstream, "10-p", crate_name, config).await;
        // Each stream has sent its first message (asking for a reply of size 4, read).
        let open = || async {
            let mut client = proxy.client().await;
            let opened = open_duplex(&mut client, None);
            tokio::time::timeout(Duration::from_secs(10), opened)
                .await
                .unwrap_or_else(|_| panic!("{what}: no reply to a first message"))
                .unwrap()
        };
        let (first_tx, mut first) = open().await;
        let (second_tx, mut second) = open().await;
        for (tx, size) in [
            (&first_tx, 5),
            (&second_tx, 5),
            (&first_tx, 5),
            (&second_tx, 6),
            (&first_tx, 6),
        ] {
            tx.send(ask(size)).await.expect("call open");
        }
        drop((first_tx, second_tx));
        let mut sizes = Vec::new();
        for replies in [&mut first, &mut second] {
            let mut got = Vec::new();
            while let Some(reply) = tokio::time::timeout(Duration::from_secs(10), replies.message())
                .await
                .expect("the replies end")
                .unwrap()
            {
                got.push(reply.payload.map_or(0, |p| p.body.len()));
            }
            sizes.push(got);
        }
        let expected = match crate_name {
            // The second and fourth message of each call dropped.
            "every_other" => [vec![5], vec![6]],
            // A message equal to the call's previous one dropped.
            _ => [vec![5, 6], vec![5, 6]],
        };
        assert_eq!(sizes, expected, "{what}: reply sizes of each stream");
        until_idle(&plugin, instances, &what).await;
    }
}

fn ask(size: i32) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size,
            interval_us: 0,
        }],
        payload: None,
        response_status: None,
    }
}

#[tokio::test]
async fn hello_rewrite_is_typed_and_scoped_to_the_greeter() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-hello", "hello_rewrite", "")]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let channel = sluice_tests::fixture::channel(proxy.addr).await;
    let mut greeter = GreeterClient::new(channel);
    let reply = greeter
        .say_hello(HelloRequest { name: "ada".into() })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello, ADA!");
    // Bidi on the greeter: every message rewritten.
    let names = ["x", "y"].map(|n| HelloRequest { name: n.into() });
    let mut replies = greeter
        .chat(tokio_stream::iter(names))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        replies.message().await.unwrap().unwrap().message,
        "Hello, X!"
    );
    assert_eq!(
        replies.message().await.unwrap().unwrap().message,
        "Hello, Y!"
    );
    // Other services are untouched (and stay on the raw path).
    let mut client = proxy.client().await;
    client.empty_call(Empty {}).await.unwrap();
}

#[tokio::test]
async fn frame_audit_counts_frames_and_forwards_them_untouched() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[("10-audit", "frame_audit", "")]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    let response = client
        .unary_call(SimpleRequest {
            response_size: 50_000,
            payload: payload(30_000),
            response_status: None,
        })
        .await
        .unwrap();
    assert_eq!(response.into_inner().payload.unwrap().body.len(), 50_000);
    let chain = proxy.proxy.registry().snapshot();
    let counters = chain.plugins()[0].counters().snapshot();
    assert!(counters["request_frames"] >= 1, "{counters:?}");
    assert!(counters["request_bytes"] >= 30_000, "{counters:?}");
    assert!(counters["response_bytes"] >= 50_000, "{counters:?}");
}

/// Request hooks run in file-name order, response hooks in reverse order.
#[tokio::test]
async fn a_three_plugin_chain_runs_in_order() {
    init_logs();
    let upstream = Upstream::start().await;
    // File names decide the order, not the order they are listed here.
    let dir = PluginDir::new(&[
        ("30-c", "chain_tag", "c"),
        ("10-a", "chain_tag", "a"),
        ("20-b", "chain_tag", "b"),
    ]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let mut client = proxy.client().await;
    let response = client.empty_call(Empty {}).await.unwrap();
    let values = |name| {
        response
            .metadata()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("x-echo-chain"), ["a", "b", "c"], "request order");
    assert_eq!(
        values("x-response-chain"),
        ["c", "b", "a"],
        "response order"
    );
}

/// A plugin learns the call it serves when it asks (here in the response headers hook, not
/// when the call reached it), also on an instance that served another call before: each
/// call gets its own method and deadline.
#[tokio::test]
async fn plugins_learn_the_call_they_serve_when_they_ask() {
    init_logs();
    let upstream = Upstream::start().await;
    let (_dir, proxy, plugin) = one_plugin_proxy(&upstream, "10-tag", "chain_tag", "t").await;
    let mut client = proxy.client().await;
    let call_of = |metadata: &tonic::metadata::MetadataMap| {
        metadata
            .get("x-response-call")
            .expect("x-response-call")
            .to_str()
            .unwrap()
            .to_owned()
    };

    let mut request = tonic::Request::new(Empty {});
    request.set_timeout(std::time::Duration::from_secs(5));
    let first = call_of(client.empty_call(request).await.unwrap().metadata());
    let (method, deadline) = first.split_once(' ').unwrap();
    assert_eq!(method, "/sluice.testing.TestService/EmptyCall");
    let deadline: u64 = deadline.parse().unwrap();
    assert!((4_000..=5_000).contains(&deadline), "{first}");
    // Back in the pool before the next call, which so reuses it.
    until_idle(&plugin, 1, "after the first call").await;

    let second = client.unary_call(SimpleRequest::default()).await.unwrap();
    assert_eq!(
        call_of(second.metadata()),
        "/sluice.testing.TestService/UnaryCall none"
    );
    until_idle(&plugin, 1, "one instance served both calls").await;
}

/// A plugin that asks for messages cannot load when the body mode is forced raw; the
/// proxy serves without it and says why in the log.
#[tokio::test]
async fn message_plugins_are_refused_in_raw_mode() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[
        ("10-dedupe", "dedupe", ""),
        ("20-auth", "auth_token", "token = \"t\""),
    ]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Raw).await;
    assert_eq!(proxy.plugin_names(), ["20-auth"]);
}

/// A plugin that wants only request headers gives its instance back as soon as that hook
/// ran; a stateless one (`size-limit`, message hooks both ways; `dedupe`, which keeps
/// its call state with the proxy) holds one only while a hook runs; one with response hooks that keeps call state holds it until the call ends.
#[tokio::test]
async fn headers_only_and_stateless_plugins_hold_no_instance_during_a_stream() {
    init_logs();
    let upstream = Upstream::start().await;
    for (crate_name, config, held_while_open) in [
        ("auth_token", "token = \"s3cret\"", 0),
        (
            "size_limit",
            "max_request_bytes = 1000\nmax_response_bytes = 1000",
            0,
        ),
        ("dedupe", "", 0),
        ("chain_tag", "t", 1),
    ] {
        let (_dir, proxy, plugin) = one_plugin_proxy(&upstream, "10-p", crate_name, config).await;
        let mut client = proxy.client().await;
        let call = open_duplex(&mut client, Some("Bearer s3cret"))
            .await
            .unwrap();
        let in_use = 1 - plugin.idle_instances();
        assert_eq!(
            in_use, held_while_open,
            "{crate_name}: instances in use mid-stream"
        );
        finish(call).await;
        // The call is over: every instance is back.
        until_idle(&plugin, 1, crate_name).await;
    }
}

/// Many streams through a stateless plugin share its instances: two open bidi streams,
/// each past a message both ways through `size-limit`, made one instance, not one each
/// (`every-other held`, which counts each call's messages in its instance, holds one per
/// stream).
#[tokio::test]
async fn stateless_plugins_share_instances_between_open_streams() {
    init_logs();
    let upstream = Upstream::start().await;
    for (crate_name, config, instances) in [
        (
            "size_limit",
            "max_request_bytes = 1000\nmax_response_bytes = 1000",
            1,
        ),
        ("every_other", "held", 2),
    ] {
        let (_dir, proxy, plugin) = one_plugin_proxy(&upstream, "10-p", crate_name, config).await;
        let mut client = proxy.client().await;
        let first = open_duplex(&mut client, None).await.unwrap();
        let second = open_duplex(&mut client, None).await.unwrap();
        finish(first).await;
        finish(second).await;
        until_idle(&plugin, instances, crate_name).await;
    }
}

/// A plugin that wants request hooks only leaves the call once the client's request has
/// ended, while the response is still to come — a server-streaming request (it arrives
/// whole with its headers) and a bidi call whose client closes its side — even when
/// another plugin of the call, with a response hook, keeps its instance until the end.
#[tokio::test]
async fn request_only_plugins_leave_the_call_when_the_request_ends() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = PluginDir::new(&[
        ("10-every-other", "every_other", "held"),
        ("20-tag", "chain_tag", "t"),
    ]);
    let proxy = proxy_with(&upstream, &dir, BodyMode::Auto).await;
    let plugins = proxy.proxy.registry().snapshot().plugins().to_vec();
    let in_use = || -> Vec<usize> { plugins.iter().map(|p| 1 - p.idle_instances()).collect() };
    let all_idle = || async {
        for plugin in &plugins {
            until_idle(plugin, 1, plugin.name()).await;
        }
    };
    let mut client = proxy.client().await;
    let slow_reply = ResponseParameters {
        size: 4,
        interval_us: 3_000_000,
    };

    // Server streaming: a reply now, the next one seconds later.
    let request = StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size: 4,
                interval_us: 0,
            },
            slow_reply,
        ],
        payload: None,
        response_status: None,
    };
    let mut replies = client
        .streaming_output_call(request)
        .await
        .unwrap()
        .into_inner();
    replies.message().await.unwrap().expect("the first reply");
    assert_eq!(
        in_use(),
        [0, 1],
        "instances in use while a server stream answers"
    );
    drop(replies);
    all_idle().await;

    // Bidi: the request side stays open (both instances held), then the client closes it.
    let (tx, replies) = open_duplex(&mut client, None).await.unwrap();
    assert_eq!(in_use(), [1, 1], "instances in use mid-stream");
    let ask_slow = StreamingOutputCallRequest {
        response_parameters: vec![slow_reply],
        payload: None,
        response_status: None,
    };
    // every-other drops the call's second message and forwards the third.
    for _ in 0..2 {
        tx.send(ask_slow.clone()).await.expect("call open");
    }
    drop(tx);
    until_idle(&plugins[0], 1, "every-other after the request ended").await;
    assert_eq!(in_use(), [0, 1], "instances in use after the request ended");
    drop(replies);
    all_idle().await;
}

/// Waits (up to 5 s) until `plugin` has `idle` instances in its pool.
async fn until_idle(plugin: &sluice::plugin::LoadedPlugin, idle: usize, what: &str) {
    let started = std::time::Instant::now();
    while plugin.idle_instances() != idle {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}: {} idle instances, not {idle}",
            plugin.idle_instances()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

type Client = test_service_client::TestServiceClient<tonic::transport::Channel>;
type OpenCall = (
    tokio::sync::mpsc::Sender<StreamingOutputCallRequest>,
    tonic::Streaming<StreamingOutputCallResponse>,
);

/// A bidi call held open through the proxy, one reply received; `Err` if the proxy
/// refused it.
async fn open_duplex(
    client: &mut Client,
    authorization: Option<&str>,
) -> Result<OpenCall, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Some(value) = authorization {
        let value = value.parse().expect("metadata value");
        request.metadata_mut().insert("authorization", value);
    }
    let mut replies = client.full_duplex_call(request).await?.into_inner();
    let ask = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: 4,
            interval_us: 0,
        }],
        payload: None,
        response_status: None,
    };
    tx.send(ask).await.expect("call open");
    replies.message().await?.expect("one reply");
    Ok((tx, replies))
}

/// Ends an open bidi call: closes the request side, reads the replies to the end.
async fn finish((tx, mut replies): OpenCall) {
    drop(tx);
    while replies.message().await.unwrap().is_some() {}
}

/// `[limits] plugin_instances` bounds the instances alive at once: a call that needs one
/// more gets UNAVAILABLE naming the plugin (and the proxy serves on), and idle instances
/// of any plugin are given up when a call needs the room.
#[tokio::test]
async fn the_instance_pool_is_bounded_and_idle_instances_make_room() {
    init_logs();
    let upstream = Upstream::start().await;
    // every-other holds an instance in every call, hello-rewrite only in Greeter calls.
    let dir = PluginDir::new(&[
        ("10-every-other", "every_other", "held"),
        ("20-hello", "hello_rewrite", ""),
    ]);
    let mut config = sluice::Config::load(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        upstream: Some(upstream.addr.to_string()),
        plugins: Some(dir.path().to_owned()),
        ..Overrides::default()
    })
    .unwrap();
    config.limits.plugin_instances = 2;
    let proxy = Proxy::from_config(config).await;
    // Loading left one idle instance of each plugin: the pool is full.
    let mut client = proxy.client().await;
    let first = open_duplex(&mut client, None)
        .await
        .expect("reuses every-other's idle instance");
    let second = open_duplex(&mut client, None)
        .await
        .expect("hello-rewrite's idle instance is given up for it");
    let refused = open_duplex(&mut client, None)
        .await
        .expect_err("no room left");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("every-other"), "{refused:?}");
    finish(first).await;
    finish(second).await;
    let every_other = proxy.proxy.registry().snapshot().plugins()[0].clone();
    until_idle(&every_other, 2, "every-other after both calls").await;
    // A Greeter call needs both plugins; hello-rewrite's instance is made again, in the
    // room of one of every-other's now idle ones.
    let channel = sluice_tests::fixture::channel(proxy.addr).await;
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest { name: "ada".into() })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello, ADA!");
}
