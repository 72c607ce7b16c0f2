//! Per-message cost of the plugin chain on the message path: a framed message through the
//! message stage (de-frame, hooks, re-frame) with no plugin, one `forward` plugin, one
//! `modify` plugin and a 3-plugin chain, for 64 B, 1 KiB and 16 KiB messages.
//! Run with: `scripts/build-plugins.sh && cargo bench -p sluice --bench chain`

mod common;

use bytes::Bytes;
use common::{framed, load, new_call, request_stage};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::plugin::{CallPlugins, Chain, LoadedPlugin, Runtime};
use sluice::proxy::MessageStage;
use std::sync::Arc;

/// A protobuf message of about `len` bytes: field 1 (bytes) filled, field 2 = 7.
fn message(len: usize) -> Vec<u8> {
    let body = len.saturating_sub(8);
    let mut out = vec![0x0a];
    let mut n = body;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend(std::iter::repeat_n(b'x', body));
    out.extend([0x10, 0x07]);
    out
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new(None, 2_000).unwrap();
    let forward = load(&runtime, "size_limit", "max_request_bytes = 100000000");
    let modify = load(&runtime, "redact_fields", "request_fields = [2]");
    let no_match = load(&runtime, "redact_fields", "request_fields = [9]");
    let dedupe = load(&runtime, "dedupe", "");
    let chain_3 = vec![forward.clone(), no_match, dedupe];
    let chains: Vec<(&str, Vec<Arc<LoadedPlugin>>)> = vec![
        ("no-plugin", vec![]),
        ("forward", vec![forward]),
        ("modify", vec![modify]),
        ("chain-3", chain_3.clone()),
    ];
    let mut group = c.benchmark_group("message");
    for size in [64usize, 1024, 16 * 1024] {
        // Two different messages, alternated, so `dedupe` forwards every one.
        let frames: Vec<Bytes> = [message(size), {
            let mut m = message(size);
            m[3] = b'y';
            m
        }]
        .iter()
        .map(|m| framed(m))
        .collect();
        group.throughput(Throughput::Elements(1));
        for (name, plugins) in &chains {
            let mut stage = request_stage(&Chain::new(plugins.clone()));
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(*name, size), |b| {
                b.iter(|| {
                    i += 1;
                    stage
                        .on_data(frames[i & 1].clone())
                        .unwrap()
                        .expect("one message out")
                })
            });
        }
        // The same chain with 128 calls in flight taking turns, each with its own call
        // state in `dedupe` (all three plugins lend their instances per message): what a
        // proxy with many open streams sees.
        let chain = Chain::new(chain_3.clone());
        let mut stages: Vec<MessageStage> = (0..128).map(|_| request_stage(&chain)).collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("chain-3-x128-calls", size), |b| {
            b.iter(|| {
                i += 1;
                let stage = &mut stages[i % 128];
                stage
                    .on_data(frames[(i / 128) & 1].clone())
                    .unwrap()
                    .expect("one message out")
            })
        });
    }
    group.finish();
}

/// The plugin work of a whole unary call, from checking out the instances to giving them
/// back: a headers-only plugin (`method-acl`) on typical request metadata, and the 3-plugin
/// chain on one 64 B request message.
fn bench_calls(c: &mut Criterion) {
    let runtime = Runtime::new(None, 2_000).unwrap();
    let acl = load(&runtime, "method_acl", "allow = [\"/bench.Svc/*\"]");
    let chain_3 = vec![
        load(&runtime, "size_limit", "max_request_bytes = 100000000"),
        load(&runtime, "redact_fields", "request_fields = [9]"),
        load(&runtime, "dedupe", ""),
    ];
    let mut metadata = http::HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "grpc-rust/1.0"),
        ("grpc-accept-encoding", "identity,gzip"),
        ("x-request-id", "0123456789abcdef"),
    ] {
        metadata.insert(name, value.parse().unwrap());
    }
    let mut group = c.benchmark_group("call");
    group.throughput(Throughput::Elements(1));
    let chain = Chain::new(vec![acl]);
    group.bench_function("headers-plugin", |b| {
        b.iter(|| {
            let mut call = CallPlugins::start(&chain, &new_call()).unwrap().unwrap();
            let mut headers = metadata.clone();
            call.request_headers(&mut headers).unwrap();
        })
    });
    let chain = Chain::new(chain_3);
    let framed = framed(&message(64));
    group.bench_function("chain-3-one-message", |b| {
        b.iter(|| {
            request_stage(&chain)
                .on_data(framed.clone())
                .unwrap()
                .expect("one message out")
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_calls);
criterion_main!(benches);
