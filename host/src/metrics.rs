//! Prometheus metrics in the text format, built from the live state at each scrape with
//! `prometheus-client`: calls, client connections by worker, upstream endpoints, plugin
//! load results, plugin states, plugin hook calls by verdict, plugin failures by kind and
//! the counters plugins keep through the `counter-add` import.

use crate::plugin::stats::{FailureKind, Hook, Outcome};
use crate::proxy::Proxy;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    cluster: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStateLabels {
    cluster: String,
    endpoint: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    plugin: String,
    hook: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    plugin: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CounterLabels {
    plugin: String,
    name: String,
}

/// The metrics text for a scrape.
pub fn render(proxy: &Proxy) -> String {
    let plugins = proxy.registry();
    let mut registry = prometheus_client::registry::Registry::default();
    proxy.metrics().register(&mut registry);
    let connections = Family::<EndpointLabels, Counter>::default();
    let open = Family::<EndpointLabels, Gauge>::default();
    let in_flight = Family::<EndpointLabels, Gauge>::default();
    let states = Family::<EndpointStateLabels, Gauge>::default();
    for cluster in proxy.clusters() {
        for stats in cluster.endpoint_stats() {
            let labels = EndpointLabels {
                cluster: cluster.name().to_string(),
                endpoint: stats.address,
            };
            connections.get_or_create(&labels).inc_by(stats.connects);
            open.get_or_create(&labels).set(stats.open as i64);
            in_flight.get_or_create(&labels).set(stats.in_flight as i64);
            for state in crate::upstream::ENDPOINT_STATES {
                states
                    .get_or_create(&EndpointStateLabels {
                        cluster: labels.cluster.clone(),
                        endpoint: labels.endpoint.clone(),
                        state,
                    })
                    .set(i64::from(state == stats.state));
            }
        }
    }
    registry.register(
        "sluice_upstream_open_connections",
        "Upstream HTTP/2 connections open now, by endpoint",
        open,
    );
    registry.register(
        "sluice_upstream_endpoint_state",
        "1 for the endpoint's current state: healthy, backoff (ejected after connect failures) or unhealthy (failing active health checks)",
        states,
    );
    registry.register(
        "sluice_upstream_connections",
        "Upstream HTTP/2 connections made, by endpoint",
        connections,
    );
    registry.register(
        "sluice_upstream_in_flight",
        "Calls in flight, by upstream endpoint",
        in_flight,
    );

    if let Some(counts) = proxy.worker_connections() {
        let open = Family::<WorkerLabel, Gauge>::default();
        for worker in 0..counts.workers() {
            open.get_or_create(&WorkerLabel {
                worker: worker.to_string(),
            })
            .set(i64::try_from(counts.open(worker)).unwrap_or(i64::MAX));
        }
        registry.register(
            "sluice_client_connections",
            "Client connections open now, by worker thread",
            open,
        );
    }

    let loads = Family::<ResultLabel, Counter>::default();
    let counters = plugins.counters();
    loads
        .get_or_create(&ResultLabel { result: "loaded" })
        .inc_by(counters.loaded.load(Ordering::Relaxed));
    loads
        .get_or_create(&ResultLabel { result: "refused" })
        .inc_by(counters.refused.load(Ordering::Relaxed));
    registry.register(
        "sluice_plugin_loads",
        "Plugin versions loaded or refused (start-up and reloads)",
        loads,
    );
    let reloads = Counter::<u64>::default();
    reloads.inc_by(counters.reloads.load(Ordering::Relaxed));
    registry.register("sluice_plugin_reloads", "Plugin folder reloads", reloads);

    let states = Family::<StateLabels, Gauge>::default();
    for state in plugins.states() {
        states
            .get_or_create(&StateLabels {
                plugin: state.name.clone(),
                state: state.state,
            })
            .set(1);
    }
    registry.register(
        "sluice_plugin_state",
        "1 for each plugin's state: loaded, stale (a newer file was refused) or refused",
        states,
    );

    let failures = Family::<FailureLabels, Counter>::default();
    let skipped = Family::<PluginLabel, Counter>::default();
    let calls = Family::<HookLabels, Counter>::default();
    let plugin_counters = Family::<CounterLabels, Counter>::default();
    for plugin in plugins.snapshot().plugins() {
        let label = PluginLabel {
            plugin: plugin.name().to_owned(),
        };
        let stats = plugin.stats();
        for kind in FailureKind::ALL {
            failures
                .get_or_create(&FailureLabels {
                    plugin: label.plugin.clone(),
                    kind: kind.label(),
                })
                .inc_by(stats.failures(kind));
        }
        skipped.get_or_create(&label).inc_by(stats.skipped());
        for hook in Hook::ALL.into_iter().filter(|h| plugin.wants_hook(*h)) {
            for outcome in Outcome::ALL {
                calls
                    .get_or_create(&HookLabels {
                        plugin: label.plugin.clone(),
                        hook: hook.label(),
                        verdict: outcome.label(),
                    })
                    .inc_by(stats.outcomes(hook, outcome));
            }
        }
        for (name, value) in plugin.counters().snapshot() {
            plugin_counters
                .get_or_create(&CounterLabels {
                    plugin: plugin.name().to_owned(),
                    name,
                })
                .inc_by(value);
        }
    }
    registry.register(
        "sluice_plugin_calls",
        "Plugin hook calls by plugin, hook and verdict (serving versions)",
        calls,
    );
    registry.register(
        "sluice_plugin_failures",
        "Plugin failures by kind: deadline, trap, limit, start (serving versions)",
        failures,
    );
    registry.register(
        "sluice_plugin_skipped",
        "Plugin failures skipped under fail-open (serving versions)",
        skipped,
    );
    registry.register(
        "sluice_plugin_counter",
        "Counters plugins keep with the counter-add import (serving versions)",
        plugin_counters,
    );

    let mut text = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!("cannot encode metrics: {err}");
    }
    text
}
