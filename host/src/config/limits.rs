//! The `[limits]` section: message size, HTTP/2 streams and windows, keepalive, idle and
//! drain timeouts, header list size, default deadline, plugin instances — defaults and
//! validation.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

/// `[limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    max_message_bytes: Option<usize>,
    max_concurrent_streams: Option<u32>,
    stream_window_bytes: Option<u32>,
    connection_window_bytes: Option<u32>,
    drain_timeout_ms: Option<u64>,
    keepalive_interval_ms: Option<u64>,
    keepalive_timeout_ms: Option<u64>,
    max_header_list_bytes: Option<u32>,
    default_deadline_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    plugin_instances: Option<u32>,
}

/// Limits and HTTP/2 tuning.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest gRPC message (after decompression) on the message path.
    pub max_message_bytes: usize,
    /// HTTP/2 streams a client may have open on one connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 initial stream window, both sides.
    pub stream_window_bytes: u32,
    /// HTTP/2 initial connection window, both sides.
    pub connection_window_bytes: u32,
    /// On shutdown, how long calls in flight may take to finish.
    pub drain_timeout: Duration,
    /// HTTP/2 PING interval on client and upstream connections (also while idle), so
    /// long quiet streams are not cut by middle boxes; `None`: off.
    pub keepalive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Largest request header list a client may send.
    pub max_header_list_bytes: u32,
    /// Deadline given to calls that carry no `grpc-timeout`; `None`: none.
    pub default_deadline: Option<Duration>,
    /// A client connection with no call open for this long is closed (GOAWAY); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Plugin instances alive at once, all plugins together (in use and idle). A call
    /// holds one per plugin taking part in it; idle ones are given up when new ones are
    /// needed. Beyond it a call gets `UNAVAILABLE`.
    pub plugin_instances: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 4096,
            stream_window_bytes: 1024 * 1024,
            connection_window_bytes: 8 * 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            max_header_list_bytes: 64 * 1024,
            default_deadline: None,
            idle_timeout: Some(Duration::from_secs(300)),
            plugin_instances: 2_000,
        }
    }
}

impl FileLimits {
    /// The limits with defaults filled in, checked.
    pub(super) fn check(self) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        let file = self;
        let limits = Limits {
            max_message_bytes: file.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            max_concurrent_streams: file
                .max_concurrent_streams
                .unwrap_or(defaults.max_concurrent_streams),
            stream_window_bytes: file
                .stream_window_bytes
                .unwrap_or(defaults.stream_window_bytes),
            connection_window_bytes: file
                .connection_window_bytes
                .unwrap_or(defaults.connection_window_bytes),
            drain_timeout: file
                .drain_timeout_ms
                .map_or(defaults.drain_timeout, Duration::from_millis),
            keepalive_interval: match file.keepalive_interval_ms {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => defaults.keepalive_interval,
            },
            keepalive_timeout: file
                .keepalive_timeout_ms
                .map_or(defaults.keepalive_timeout, Duration::from_millis),
            max_header_list_bytes: file
                .max_header_list_bytes
                .unwrap_or(defaults.max_header_list_bytes),
            default_deadline: file
                .default_deadline_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            idle_timeout: match file.idle_timeout_ms {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => defaults.idle_timeout,
            },
            plugin_instances: file.plugin_instances.unwrap_or(defaults.plugin_instances),
        };
        if limits.max_message_bytes == 0 || limits.max_message_bytes > u32::MAX as usize {
            return Err(invalid(
                "limits.max_message_bytes",
                "must be between 1 and 4294967295",
            ));
        }
        // Each instance reserves about 8 GiB of address space (two 4 GiB memory slots with
        // guard pages, so wasm code needs no bounds checks): 10,000 fit in the 128 TiB of a
        // 64-bit process, 20,000 do not.
        if !(1..=10_000).contains(&limits.plugin_instances) {
            return Err(invalid(
                "limits.plugin_instances",
                "must be between 1 and 10000",
            ));
        }
        if limits.max_concurrent_streams == 0 {
            return Err(invalid(
                "limits.max_concurrent_streams",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("limits.stream_window_bytes", limits.stream_window_bytes),
            (
                "limits.connection_window_bytes",
                limits.connection_window_bytes,
            ),
        ] {
            if !(65_535..=(1 << 31) - 1).contains(&value) {
                return Err(invalid(key, "must be between 65535 and 2147483647"));
            }
        }
        Ok(limits)
    }
}
