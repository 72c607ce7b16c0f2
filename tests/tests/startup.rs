//! Start-up with 10 plugins, with a cold and a warm compile cache: the warm start must not
//! compile again (its time is printed; the check is that it is faster, not a number).

use sluice::config::BodyMode;
use sluice::plugin::{PluginSource, Registry, Runtime};
use sluice_tests::plugins::PluginDir;
use std::time::{Duration, Instant};

fn start(dir: &PluginDir, cache: &std::path::Path) -> (Duration, usize) {
    let started = Instant::now();
    let runtime = Runtime::new(Some(cache), 2_000).unwrap();
    let registry = Registry::open(PluginSource {
        runtime,
        dir: dir.path().to_owned(),
        body_mode: BodyMode::Auto,
        policies: Default::default(),
    });
    (started.elapsed(), registry.snapshot().plugins().len())
}

#[test]
fn ten_plugins_start_faster_with_a_warm_cache() {
    let dir = PluginDir::new(&[
        ("01-auth", "auth_token", "token = \"t\""),
        ("02-acl", "method_acl", "deny = [\"/x.Y/*\"]"),
        ("03-size", "size_limit", "max_request_bytes = 100"),
        ("04-redact", "redact_fields", "request_fields = [3]"),
        ("05-dedupe", "dedupe", ""),
        ("06-hello", "hello_rewrite", ""),
        ("07-audit", "frame_audit", ""),
        ("08-tag", "chain_tag", "a"),
        ("09-tag", "chain_tag", "b"),
        ("10-tag", "chain_tag", "c"),
    ]);
    let cache = dir.path().with_extension("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let (cold, loaded) = start(&dir, &cache);
    assert_eq!(loaded, 10);
    let (warm, loaded) = start(&dir, &cache);
    assert_eq!(loaded, 10);
    println!("start-up with 10 plugins: cold cache {cold:?}, warm cache {warm:?}");
    assert!(
        warm < cold,
        "warm start ({warm:?}) was not faster than cold ({cold:?})"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
