//! The `[clusters.NAME.health_check]` section: active `grpc.health.v1.Health/Check` probes.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::time::Duration;

/// `[clusters.NAME.health_check]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHealthCheck {
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    service: Option<String>,
    unhealthy_threshold: Option<u32>,
    healthy_threshold: Option<u32>,
}

/// Active health checking of a cluster's endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// Time between probes of one endpoint.
    pub interval: Duration,
    /// How long a probe may take before it counts as failed.
    pub timeout: Duration,
    /// The `service` field of the `HealthCheckRequest` (`""`: the whole server).
    pub service: String,
    /// Consecutive failed probes that take an endpoint out of rotation.
    pub unhealthy_threshold: u32,
    /// Consecutive good probes that put it back.
    pub healthy_threshold: u32,
}

impl FileHealthCheck {
    pub(super) fn check(self, cluster_key: &str) -> Result<HealthCheck, ConfigError> {
        let key = |name: &str| format!("{cluster_key}.health_check.{name}");
        let at_least_one = |name: &str, value: u64| {
            if value == 0 {
                Err(invalid(key(name), "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let interval = at_least_one("interval_ms", self.interval_ms.unwrap_or(5_000))?;
        let timeout = at_least_one("timeout_ms", self.timeout_ms.unwrap_or(1_000))?;
        Ok(HealthCheck {
            interval: Duration::from_millis(interval),
            timeout: Duration::from_millis(timeout),
            service: self.service.unwrap_or_default(),
            unhealthy_threshold: at_least_one(
                "unhealthy_threshold",
                self.unhealthy_threshold.unwrap_or(2).into(),
            )? as u32,
            healthy_threshold: at_least_one(
                "healthy_threshold",
                self.healthy_threshold.unwrap_or(1).into(),
            )? as u32,
        })
    }
}
