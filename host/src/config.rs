//! Configuration: the TOML file format, the command-line flags that override it, defaults
//! that serve out of the box, and validation with messages that name the offending key.

use crate::plugin::{FailurePolicy, PluginLimits};
use crate::routing::Pattern;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod health;
mod limits;
mod tls;

pub use health::HealthCheck;
pub use limits::Limits;
pub use tls::{ListenerTls, UpstreamTls};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default upstream when neither flags nor file name one.
pub const DEFAULT_UPSTREAM: &str = "127.0.0.1:50052";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema (the message names key and line).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Which body path calls take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BodyMode {
    /// Raw unless a plugin of the call asks for messages.
    #[default]
    Auto,
    /// Always forward HTTP/2 body frames untouched.
    Raw,
    /// Always de-frame, decompress and re-frame gRPC messages.
    Message,
}

/// How a cluster spreads calls over its endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balancing {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// Of two endpoints picked at random, the one with fewer calls in flight.
    PowerOfTwoChoices,
}

/// The TOML file, exactly as written (every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin: Option<String>,
    plugins: Option<PathBuf>,
    body_mode: Option<BodyMode>,
    #[serde(default)]
    routes: Vec<FileRoute>,
    #[serde(default)]
    clusters: BTreeMap<String, FileCluster>,
    #[serde(default)]
    limits: limits::FileLimits,
    plugin_cache: Option<PathBuf>,
    watch_plugins: Option<bool>,
    access_log: Option<bool>,
    #[serde(default)]
    plugin_defaults: FilePluginLimits,
    #[serde(default)]
    plugin: BTreeMap<String, FilePluginLimits>,
    tls: Option<tls::FileListenerTls>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePluginLimits {
    hook_deadline_ms: Option<u64>,
    memory_bytes: Option<usize>,
    max_output_bytes: Option<usize>,
    max_call_state_bytes: Option<usize>,
    on_error: Option<FailurePolicy>,
}

impl FilePluginLimits {
    fn apply(&self, key: &str, base: &PluginLimits) -> Result<PluginLimits, ConfigError> {
        let mut limits = base.clone();
        if let Some(ms) = self.hook_deadline_ms {
            if ms == 0 {
                return Err(invalid(
                    format!("{key}.hook_deadline_ms"),
                    "must be at least 1",
                ));
            }
            limits.hook_deadline = Duration::from_millis(ms);
        }
        if let Some(bytes) = self.memory_bytes {
            if !(1024 * 1024..=256 * 1024 * 1024).contains(&bytes) {
                return Err(invalid(
                    format!("{key}.memory_bytes"),
                    "must be between 1 MiB and 256 MiB",
                ));
            }
            limits.memory_bytes = bytes;
        }
        if let Some(bytes) = self.max_output_bytes {
            if bytes == 0 {
                return Err(invalid(
                    format!("{key}.max_output_bytes"),
                    "must be at least 1",
                ));
            }
            limits.max_output_bytes = bytes;
        }
        if let Some(bytes) = self.max_call_state_bytes {
            if bytes > 256 * 1024 * 1024 {
                return Err(invalid(
                    format!("{key}.max_call_state_bytes"),
                    "must be at most 256 MiB",
                ));
            }
            limits.max_call_state_bytes = bytes;
        }
        if let Some(policy) = self.on_error {
            limits.on_error = policy;
        }
        Ok(limits)
    }
}

/// Plugin limits and policies: the defaults and per-plugin overrides by file stem.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PluginPolicies {
    /// For every plugin without an override.
    pub defaults: PluginLimits,
    /// By plugin name (the `.wasm` file name without extension).
    pub overrides: BTreeMap<String, PluginLimits>,
}

impl PluginPolicies {
    /// The limits for plugin `name`.
    pub fn for_plugin(&self, name: &str) -> &PluginLimits {
        self.overrides.get(name).unwrap_or(&self.defaults)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    #[serde(rename = "match")]
    pattern: String,
    cluster: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    endpoints: Vec<String>,
    connections_per_endpoint: Option<usize>,
    connect_timeout_ms: Option<u64>,
    balancing: Option<Balancing>,
    tls: Option<tls::FileUpstreamTls>,
    health_check: Option<health::FileHealthCheck>,
}

/// Settings given on the command line; each wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--upstream` (same as a `*` route).
    pub upstream: Option<String>,
    /// `--route GLOB=ADDR[,ADDR...]`, in order.
    pub routes: Vec<String>,
    /// `--body-mode`.
    pub body_mode: Option<BodyMode>,
    /// `--plugins`.
    pub plugins: Option<PathBuf>,
    /// `--admin`.
    pub admin: Option<String>,
    /// `--plugin-cache`.
    pub plugin_cache: Option<PathBuf>,
    /// `--no-watch`.
    pub no_watch: bool,
    /// `--no-access-log`.
    pub no_access_log: bool,
}

/// One upstream cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Name (from the file, or derived from the addresses of a `--route`).
    pub name: String,
    /// `host:port` of each endpoint.
    pub endpoints: Vec<String>,
    /// HTTP/2 connections kept to each endpoint.
    pub connections_per_endpoint: usize,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Balancing across endpoints.
    pub balancing: Balancing,
    /// TLS to the endpoints; `None`: plaintext HTTP/2 (h2c).
    pub tls: Option<UpstreamTls>,
    /// Active health checks; `None`: only passive ejection on connect failures.
    pub health_check: Option<HealthCheck>,
}

/// A route: calls whose method matches `pattern` go to `cluster`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteConfig {
    /// The method pattern.
    pub pattern: Pattern,
    /// Index into [`Config::clusters`].
    pub cluster: usize,
}

/// The validated configuration the proxy runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Listen address of the gRPC listener.
    pub listen: String,
    /// Admin listener, if any.
    pub admin: Option<String>,
    /// Plugin folder, if any.
    pub plugins: Option<PathBuf>,
    /// Body path selection.
    pub body_mode: BodyMode,
    /// Routes in the order given; lookup precedence is decided by the routing table.
    pub routes: Vec<RouteConfig>,
    /// Upstream clusters.
    pub clusters: Vec<ClusterConfig>,
    /// Limits.
    pub limits: Limits,
    /// Private folder for compiled plugins (wasmtime's cache); none: no cache.
    pub plugin_cache: Option<PathBuf>,
    /// Whether the plugin folder is watched for changes (else: SIGHUP or `POST /reload`).
    pub watch_plugins: bool,
    /// One log line per call (target `sluice::access`).
    pub access_log: bool,
    /// Plugin limits and failure policies.
    pub plugin_policies: PluginPolicies,
    /// TLS on the gRPC listener; `None`: plaintext HTTP/2 (h2c).
    pub tls: Option<ListenerTls>,
}

const DEFAULT_CONNECTIONS: usize = 2;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Config {
    /// Builds the configuration from the file named in `overrides` (if any) and the flags.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::build(file, overrides)
    }

    /// Parses a TOML document (as if read from `path`) and applies the flags.
    pub fn from_toml(
        text: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        Config::build(parse_file(text, path)?, overrides)
    }

    fn build(file: FileConfig, flags: &Overrides) -> Result<Config, ConfigError> {
        let listen = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        check_address("listen", &listen)?;
        let admin = flags.admin.clone().or(file.admin);
        if let Some(admin) = &admin {
            check_address("admin", admin)?;
        }
        let mut clusters = Vec::new();
        for (name, cluster) in file.clusters {
            clusters.push(file_cluster(name, cluster)?);
        }
        let mut routes: Vec<RouteConfig> = Vec::new();
        for (i, route) in file.routes.into_iter().enumerate() {
            let key = format!("routes[{i}]");
            let pattern = Pattern::parse(&route.pattern)
                .map_err(|e| invalid(format!("{key}.match"), e.to_string()))?;
            let cluster = clusters
                .iter()
                .position(|c| c.name == route.cluster)
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.cluster"),
                        format!("no cluster named {:?} in [clusters]", route.cluster),
                    )
                })?;
            routes.push(RouteConfig { pattern, cluster });
        }
        let mut flag_routes = flags.routes.clone();
        if let Some(upstream) = &flags.upstream {
            flag_routes.push(format!("*={upstream}"));
        }
        if routes.is_empty() && flag_routes.is_empty() {
            flag_routes.push(format!("*={DEFAULT_UPSTREAM}"));
        }
        for spec in &flag_routes {
            let (pattern, cluster) = flag_route(spec, &mut clusters)?;
            // A flag wins over a file route with the same pattern.
            routes.retain(|r| r.pattern != pattern);
            routes.push(RouteConfig { pattern, cluster });
        }
        let limits = file.limits.check()?;
        let defaults = file
            .plugin_defaults
            .apply("plugin_defaults", &PluginLimits::default())?;
        let mut overrides = BTreeMap::new();
        for (name, limits) in &file.plugin {
            overrides.insert(
                name.clone(),
                limits.apply(&format!("plugin.{name}"), &defaults)?,
            );
        }
        Ok(Config {
            listen,
            admin,
            plugins: flags.plugins.clone().or(file.plugins),
            body_mode: flags.body_mode.or(file.body_mode).unwrap_or_default(),
            routes,
            clusters,
            limits,
            plugin_cache: flags.plugin_cache.clone().or(file.plugin_cache),
            watch_plugins: !flags.no_watch && file.watch_plugins.unwrap_or(true),
            access_log: !flags.no_access_log && file.access_log.unwrap_or(true),
            plugin_policies: PluginPolicies {
                defaults,
                overrides,
            },
            tls: file.tls.map(tls::FileListenerTls::check).transpose()?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

fn file_cluster(name: String, cluster: FileCluster) -> Result<ClusterConfig, ConfigError> {
    let key = format!("clusters.{name}");
    if cluster.endpoints.is_empty() {
        return Err(invalid(
            format!("{key}.endpoints"),
            "needs at least one endpoint",
        ));
    }
    for (i, endpoint) in cluster.endpoints.iter().enumerate() {
        check_address(&format!("{key}.endpoints[{i}]"), endpoint)?;
    }
    let connections = cluster
        .connections_per_endpoint
        .unwrap_or(DEFAULT_CONNECTIONS);
    if !(1..=64).contains(&connections) {
        return Err(invalid(
            format!("{key}.connections_per_endpoint"),
            "must be between 1 and 64",
        ));
    }
    let connect_timeout = match cluster.connect_timeout_ms {
        Some(0) => {
            return Err(invalid(
                format!("{key}.connect_timeout_ms"),
                "must be at least 1",
            ));
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    Ok(ClusterConfig {
        name,
        endpoints: cluster.endpoints,
        connections_per_endpoint: connections,
        connect_timeout,
        balancing: cluster.balancing.unwrap_or_default(),
        tls: cluster.tls.map(|t| t.check(&key)).transpose()?,
        health_check: cluster.health_check.map(|h| h.check(&key)).transpose()?,
    })
}

/// Parses `GLOB=ADDR[,ADDR...]`, reusing a cluster with the same endpoints.
fn flag_route(
    spec: &str,
    clusters: &mut Vec<ClusterConfig>,
) -> Result<(Pattern, usize), ConfigError> {
    let key = format!("--route {spec}");
    let (glob, addresses) = spec
        .split_once('=')
        .ok_or_else(|| invalid(&key, "expected GLOB=ADDR[,ADDR...]"))?;
    let pattern = Pattern::parse(glob).map_err(|e| invalid(&key, e.to_string()))?;
    let endpoints: Vec<String> = addresses.split(',').map(|a| a.trim().to_owned()).collect();
    for endpoint in &endpoints {
        check_address(&key, endpoint)?;
    }
    let name = endpoints.join(",");
    let index = match clusters.iter().position(|c| c.endpoints == endpoints) {
        Some(index) => index,
        None => {
            clusters.push(ClusterConfig {
                name,
                endpoints,
                connections_per_endpoint: DEFAULT_CONNECTIONS,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                balancing: Balancing::default(),
                tls: None,
                health_check: None,
            });
            clusters.len() - 1
        }
    };
    Ok((pattern, index))
}

/// Accepts `host:port` (IPv6 hosts in brackets) with a numeric port.
fn check_address(key: &str, address: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        invalid(
            key,
            format!("{address:?} is not a host:port address ({why})"),
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    port.parse::<u16>()
        .map_err(|_| bad("port is not a number from 0 to 65535"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
