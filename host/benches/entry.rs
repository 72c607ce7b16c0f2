//! What entering a plugin costs against the floor wasmtime 48 sets: the same 64 B message
//! (a) through the message stage with no plugin, (b) through it with one `forward` plugin
//! (`size-limit`), and (c) handed to a bare component export that does nothing, on an
//! engine configured as sluice's (component model, epoch deadline set before each call,
//! pooled instances). (b) − (a) is one plugin entry as sluice makes it; (c) is what
//! wasmtime charges for any call of a component export taking a `list<u8>`: entering and
//! leaving wasm, finding the export's function, and lowering the list (which enters the
//! component a second time, in its `realloc`, for room).
//! Run with: `scripts/build-plugins.sh && cargo bench -p sluice --bench entry`

mod common;

use common::{framed, load, request_stage};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::plugin::{Chain, Runtime};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// A component exporting `on-message: func(call: u64, message: list<u8>) -> u32` whose
/// core function returns 0 at once; its `realloc` is a bump allocator over one page.
const BARE_COMPONENT: &str = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (if (i32.gt_u (i32.add (global.get $next) (local.get 3)) (i32.const 65536))
        (then (global.set $next (i32.const 1024))))
      (local.set $at (global.get $next))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func (export "on-message") (param i64 i32 i32) (result i32)
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func (export "on-message") (param "call" u64) (param "message" (list u8)) (result u32)
    (canon lift (core func $i "on-message") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc")))))
"#;

/// An engine set up as sluice's plugin runtime sets up its own.
fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(10)
        .total_core_instances(40)
        .total_memories(20)
        .total_tables(40)
        .max_memory_size(256 * 1024 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).unwrap()
}

fn bench(c: &mut Criterion) {
    let message = vec![b'x'; 64];
    let framed = framed(&message);
    let runtime = Runtime::new(None, 100).unwrap();
    let size_limit = load(&runtime, "size_limit", "max_request_bytes = 100000000");

    let mut group = c.benchmark_group("entry");
    group.throughput(Throughput::Elements(1));
    for (name, plugins) in [
        ("stage-no-plugin/64", vec![]),
        ("stage-one-plugin/64", vec![size_limit]),
    ] {
        let mut stage = request_stage(&Chain::new(plugins));
        group.bench_function(name, |b| {
            b.iter(|| stage.on_data(framed.clone()).unwrap().expect("a message"))
        });
    }

    let engine = engine();
    let component = Component::new(&engine, wat::parse_str(BARE_COMPONENT).unwrap()).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Linker::new(&engine)
        .instantiate(&mut store, &component)
        .unwrap();
    let export = instance
        .get_typed_func::<(u64, &[u8]), (u32,)>(&mut store, "on-message")
        .unwrap();
    group.bench_function("bare-component-call/64", |b| {
        b.iter(|| {
            store.set_epoch_deadline(1_000);
            export.call(&mut store, (7, &message)).unwrap().0
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
