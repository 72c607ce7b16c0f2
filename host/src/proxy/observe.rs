//! What each call leaves behind: Prometheus series (calls by method and status, duration,
//! bytes in and out) and, unless turned off, one access-log line (with the plugin
//! verdicts that changed the call).

use super::link::TallyHandle;
use super::method::MethodName;
use crate::grpc::Code;
use crate::grpc::counter::MessageCounter;
use crate::plugin::stats::CallActions;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Distinct method labels kept; further methods are counted as `other` (clients choose
/// method names, so an unbounded label set would be a memory leak).
const MAX_METHOD_LABELS: usize = 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: String,
}

/// What the client sent on a call: body bytes and gRPC messages (counted by the request
/// body as it forwards them).
#[derive(Debug, Default)]
pub struct RequestTally {
    /// Body bytes.
    pub bytes: AtomicU64,
    /// Messages (length prefixes seen).
    pub messages: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

/// The proxy's call metrics.
#[derive(Debug)]
pub struct CallMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Histogram,
    bytes: Family<DirectionLabel, Counter>,
    messages: Family<DirectionLabel, Counter>,
    /// Handles on the four direction series, so a call adds to them without a lookup.
    bytes_in: Counter,
    bytes_out: Counter,
    messages_in: Counter,
    messages_out: Counter,
    /// Per method label, the `calls` series of each status code seen, so a call ends
    /// with one map lookup and no label strings built.
    call_series: RwLock<HashMap<Box<str>, CodeSeries>>,
    access_log: bool,
}

impl CallMetrics {
    /// Metrics, and access-log lines if `access_log`.
    pub fn new(access_log: bool) -> CallMetrics {
        let bytes = Family::<DirectionLabel, Counter>::default();
        let messages = Family::<DirectionLabel, Counter>::default();
        let series = |family: &Family<DirectionLabel, Counter>, direction| {
            family.get_or_create(&DirectionLabel { direction }).clone()
        };
        CallMetrics {
            calls: Family::default(),
            duration: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            bytes_in: series(&bytes, "in"),
            bytes_out: series(&bytes, "out"),
            messages_in: series(&messages, "in"),
            messages_out: series(&messages, "out"),
            bytes,
            messages,
            call_series: RwLock::new(HashMap::new()),
            access_log,
        }
    }

    /// Adds the call series to a metrics registry being rendered.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "sluice_calls",
            "Calls by method and final gRPC status code",
            self.calls.clone(),
        );
        registry.register(
            "sluice_call_duration_seconds",
            "Call duration, from request headers to the end of the response",
            self.duration.clone(),
        );
        registry.register(
            "sluice_body_bytes",
            "Body bytes through the proxy by direction",
            self.bytes.clone(),
        );
        registry.register(
            "sluice_messages",
            "gRPC messages through the proxy by direction (as the client sent and received them)",
            self.messages.clone(),
        );
    }

    /// Counts one call of `method` ending with `code`.
    fn count_call(&self, method: &str, code: &str) {
        {
            let series = self.call_series.read().expect("call series lock");
            // One hash for a method already seen (the common case).
            let codes = match series.get(method) {
                Some(codes) => Some(codes),
                None if series.len() >= MAX_METHOD_LABELS => series.get(OTHER_METHODS),
                None => None,
            };
            if let Some(counter) = codes.and_then(|codes| code_counter(codes, code)) {
                counter.inc();
                return;
            }
        }
        let mut series = self.call_series.write().expect("call series lock");
        let method = method_label(&series, method);
        let codes = series.entry(method.into()).or_default();
        let counter = match code_counter(codes, code) {
            Some(counter) => counter.clone(),
            None => {
                let counter = self
                    .calls
                    .get_or_create(&CallLabels {
                        method: method.to_owned(),
                        code: code.to_owned(),
                    })
                    .clone();
                codes.push((code.into(), counter.clone()));
                counter
            }
        };
        counter.inc();
    }
}

/// The label `method` is counted under: its own while it has one or there is room for
/// another, [`OTHER_METHODS`] once [`MAX_METHOD_LABELS`] methods have theirs.
fn method_label<'a>(series: &HashMap<Box<str>, CodeSeries>, method: &'a str) -> &'a str {
    if series.contains_key(method) || series.len() < MAX_METHOD_LABELS {
        method
    } else {
        OTHER_METHODS
    }
}

/// The series of `code` among one method's.
fn code_counter<'a>(codes: &'a CodeSeries, code: &str) -> Option<&'a Counter> {
    codes
        .iter()
        .find(|(c, _)| &**c == code)
        .map(|(_, counter)| counter)
}

/// One method's `calls` series, by status code.
type CodeSeries = Vec<(Box<str>, Counter)>;

/// The method label of calls past the first [`MAX_METHOD_LABELS`] methods.
const OTHER_METHODS: &str = "other";

/// The status label of a `grpc-status` value: the codes gRPC defines without a copy.
fn grpc_status_label(value: &[u8]) -> Cow<'static, str> {
    match Code::from_status_text(value) {
        Some(code) => Cow::Borrowed(code.as_str()),
        None => Cow::Owned(String::from_utf8_lossy(value).into_owned()),
    }
}

/// One call being observed; recorded once, when it ends.
#[derive(Debug)]
pub struct CallRecord {
    metrics: Arc<CallMetrics>,
    method: MethodName,
    cluster: Option<Arc<str>>,
    endpoint: Option<Arc<str>>,
    started: Instant,
    request: TallyHandle,
    response_bytes: u64,
    response_messages: MessageCounter,
    response_message_count: u64,
    status: Option<Cow<'static, str>>,
    plugin_actions: Option<Arc<CallActions>>,
}

impl CallRecord {
    /// Starts observing a call of `method` (cluster `-` until routed).
    pub fn new(metrics: Arc<CallMetrics>, method: MethodName, request: TallyHandle) -> CallRecord {
        CallRecord {
            metrics,
            method,
            cluster: None,
            endpoint: None,
            started: Instant::now(),
            request,
            response_bytes: 0,
            response_messages: MessageCounter::default(),
            response_message_count: 0,
            status: None,
            plugin_actions: None,
        }
    }

    /// The cluster the call was routed to.
    pub fn set_cluster(&mut self, cluster: &Arc<str>) {
        self.cluster = Some(cluster.clone());
    }

    /// The endpoint the call went to.
    pub fn set_endpoint(&mut self, endpoint: &Arc<str>) {
        self.endpoint = Some(endpoint.clone());
    }

    /// The plugins' verdicts that changed the call, for the access log.
    pub fn set_plugin_actions(&mut self, actions: Arc<CallActions>) {
        self.plugin_actions = Some(actions);
    }

    /// Counts response body bytes and the messages they hold.
    pub fn add_response_data(&mut self, data: &[u8]) {
        self.response_bytes += data.len() as u64;
        self.response_message_count += self.response_messages.feed(data);
    }

    /// The final status: the value of a `grpc-status` header.
    pub fn set_grpc_status(&mut self, value: &[u8]) {
        self.status = Some(grpc_status_label(value));
    }

    /// The final status of a non-gRPC answer (no `grpc-status`): `http-NNN`.
    pub fn set_http_status(&mut self, status: http::StatusCode) {
        self.status = Some(Cow::Owned(format!("http-{}", status.as_u16())));
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // A call that ended without a status was cut off (client gone, reset).
        let code = self.status.as_deref().unwrap_or("reset");
        let elapsed = self.started.elapsed();
        let request_bytes = self.request.bytes.load(Ordering::Relaxed);
        let request_messages = self.request.messages.load(Ordering::Relaxed);
        let metrics = &self.metrics;
        metrics.count_call(&self.method, code);
        metrics.duration.observe(elapsed.as_secs_f64());
        metrics.bytes_in.inc_by(request_bytes);
        metrics.bytes_out.inc_by(self.response_bytes);
        metrics.messages_in.inc_by(request_messages);
        metrics.messages_out.inc_by(self.response_message_count);
        if metrics.access_log {
            tracing::info!(
                target: "sluice::access",
                method = %self.method,
                cluster = self.cluster.as_deref().unwrap_or("-"),
                endpoint = self.endpoint.as_deref().unwrap_or("-"),
                status = %code,
                duration_us = elapsed.as_micros() as u64,
                bytes_in = request_bytes,
                bytes_out = self.response_bytes,
                messages_in = request_messages,
                messages_out = self.response_message_count,
                plugins = %self
                    .plugin_actions
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |a| a.summary()),
                "call"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &CallMetrics) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    fn calls(text: &str, method: &str, code: &str) -> Option<u64> {
        let labels = format!("sluice_calls_total{{method=\"{method}\",code=\"{code}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&labels))
            .map(|count| count.parse().unwrap())
    }

    #[test]
    fn status_labels_are_the_values_sent() {
        for code in 0..=16 {
            let value = code.to_string();
            let label = grpc_status_label(value.as_bytes());
            assert_eq!(label, value.as_str());
            assert!(matches!(label, Cow::Borrowed(_)), "code {code} copied");
        }
        assert_eq!(grpc_status_label(b"17"), "17");
        assert_eq!(grpc_status_label(b"01"), "01");
        assert_eq!(grpc_status_label(b"x\xff"), "x\u{fffd}");
    }

    #[test]
    fn calls_are_counted_by_method_and_code() {
        let metrics = CallMetrics::new(false);
        for code in ["0", "0", "14", "0"] {
            metrics.count_call("/a.B/C", code);
        }
        metrics.count_call("/a.B/D", "0");
        let text = rendered(&metrics);
        assert_eq!(calls(&text, "/a.B/C", "0"), Some(3), "{text}");
        assert_eq!(calls(&text, "/a.B/C", "14"), Some(1), "{text}");
        assert_eq!(calls(&text, "/a.B/D", "0"), Some(1), "{text}");
    }

    #[test]
    fn methods_past_the_label_limit_are_counted_as_other() {
        let metrics = CallMetrics::new(false);
        for i in 0..MAX_METHOD_LABELS + 3 {
            metrics.count_call(&format!("/m.S/M{i}"), "0");
        }
        metrics.count_call("/m.S/M0", "0");
        metrics.count_call("/m.S/late", "5");
        let text = rendered(&metrics);
        assert_eq!(
            calls(&text, "/m.S/M0", "0"),
            Some(2),
            "a known method keeps its label"
        );
        assert_eq!(calls(&text, "other", "0"), Some(3));
        assert_eq!(calls(&text, "other", "5"), Some(1));
        assert_eq!(
            calls(&text, &format!("/m.S/M{MAX_METHOD_LABELS}"), "0"),
            None
        );
    }
}
